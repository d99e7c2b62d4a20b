using Microsoft.Extensions.Logging.Abstractions;
using StreamGrains.Grains.Subtasks;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Tests.Subtasks;

public sealed class SubtaskDirectoriesTests : IDisposable
{
    private static readonly SubtaskId Self = new(new JobId("job-1"), Chain: 1, Index: 0, Attempt: 3);
    private static readonly KeyGroupRange OwnKeyGroups = new(0, 63);
    private readonly string _root = Path.Combine(Path.GetTempPath(), "streamgrains-tests", $"dirs-{Guid.NewGuid():N}");
    private readonly SubtaskDirectories _directories;

    public SubtaskDirectoriesTests()
    {
        _directories = new SubtaskDirectories(_root, Self, NullLogger.Instance);
        Touch("job-1/work/1-0-a3/db/000001.sst"); // this attempt's working directory
        Touch("job-1/work/1-1-a3/db/000001.sst"); // another subtask's
        Touch("job-1/local/counts/kg-0-63/chk-4/000001.sst"); // this subtask's local checkpoint copies
        Touch("job-1/local/counts/kg-64-127/chk-4/000001.sst"); // another subtask's
        Touch("job-1/local/sums/kg-0-63/chk-4/000002.sst");
        Directory.CreateDirectory(Path.Combine(_root, "job-1", "work", "1-2-a3"));
    }

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public void The_working_directory_is_per_attempt_and_local_checkpoints_are_per_job()
    {
        Assert.Equal(Path.Combine(_root, "job-1"), _directories.Job);
        Assert.Equal(Path.Combine(_root, "job-1", "work", "1-0-a3"), _directories.Working);
        Assert.Equal(Path.Combine(_root, "job-1", "local"), _directories.LocalCheckpointRoot);
    }

    [Fact]
    public void A_failover_deletes_the_working_directory_and_keeps_local_checkpoints_and_empty_directories()
    {
        _directories.CleanUp(StopReason.Failover, deleteWorkingDirectory: true, ["counts", "sums"], OwnKeyGroups);

        Assert.False(Exists("job-1/work/1-0-a3"));
        Assert.True(Exists("job-1/work/1-1-a3/db/000001.sst"));
        Assert.True(Exists("job-1/local/counts/kg-0-63/chk-4/000001.sst"));
        Assert.True(Exists("job-1/local/sums/kg-0-63/chk-4/000002.sst"));
        Assert.True(Exists("job-1/work/1-2-a3"));
    }

    [Fact]
    public void The_end_of_the_job_deletes_the_local_checkpoints_of_this_subtask_and_the_directories_left_empty()
    {
        _directories.CleanUp(StopReason.JobEnded, deleteWorkingDirectory: true, ["counts", "sums"], OwnKeyGroups);

        Assert.False(Exists("job-1/work/1-0-a3"));
        Assert.False(Exists("job-1/local/counts/kg-0-63"));
        Assert.False(Exists("job-1/local/sums")); // left empty
        Assert.False(Exists("job-1/work/1-2-a3")); // empty
        Assert.True(Exists("job-1/work/1-1-a3/db/000001.sst"));
        Assert.True(Exists("job-1/local/counts/kg-64-127/chk-4/000001.sst"));
    }

    [Fact]
    public void The_last_subtask_of_a_job_to_end_leaves_no_directory_of_the_job()
    {
        new SubtaskDirectories(_root, Self with { Index = 1 }, NullLogger.Instance).CleanUp(StopReason.JobEnded, deleteWorkingDirectory: true, ["counts"], new KeyGroupRange(64, 127));
        _directories.CleanUp(StopReason.JobEnded, deleteWorkingDirectory: true, ["counts", "sums"], OwnKeyGroups);

        Assert.False(Exists("job-1"));
        Assert.True(Directory.Exists(_root));
    }

    [Fact]
    public void The_working_directory_is_kept_when_local_state_is_not_deleted_on_stop()
    {
        _directories.CleanUp(StopReason.JobEnded, deleteWorkingDirectory: false, ["counts", "sums"], OwnKeyGroups);

        Assert.True(Exists("job-1/work/1-0-a3/db/000001.sst"));
        Assert.False(Exists("job-1/local/counts/kg-0-63"));
    }

    private void Touch(string relative)
    {
        var path = Path.Combine(_root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, relative);
    }

    private bool Exists(string relative)
    {
        var path = Path.Combine(_root, relative);
        return File.Exists(path) || Directory.Exists(path);
    }
}
