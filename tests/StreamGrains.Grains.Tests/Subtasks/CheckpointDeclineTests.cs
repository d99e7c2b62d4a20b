using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using StreamGrains.Snapshots;
using StreamGrains.State.Storage;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests.Subtasks;

/// <summary>A subtask's decline, from the subtask to the checkpoint's statistics, on a cluster.</summary>
public sealed class CheckpointDeclineTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task A_checkpoint_whose_state_cannot_be_stored_is_declined_and_its_statistics_say_why()
    {
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions
        {
            Silos = 1,
            ConfigureServices = static services => services.AddSingleton<ICheckpointStorage>(static sp => new FailingUploadStorage(
                new FileSystemCheckpointStorage(sp.GetRequiredService<IOptions<StreamGrainsOptions>>().Value.CheckpointStorage.Path))),
        });
        var client = cluster.Client;
        var jobId = await cluster.SubmitAsync<EndlessJob>(parallelism: 1, configure: static s => s with
        {
            // Triggered by the test only; no eager uploads, so the checkpoint's own upload is the first to fail.
            Checkpointing = new CheckpointSettings { Interval = TimeSpan.FromHours(1), Timeout = TimeSpan.FromSeconds(30), TolerableFailures = 10, EagerUploadInterval = null },
        });
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);

        var stats = await client.TriggerCheckpointAsync(jobId, Timeout);
        await client.CancelAsync(jobId);

        Assert.Equal((CheckpointOutcome.Aborted, CheckpointFailureReason.Declined, CheckpointDeclineReason.StoreFailed), (stats.Outcome, stats.FailureReason, stats.DeclineReason));
        Assert.Contains("could not store its state", stats.FailureMessage, StringComparison.Ordinal);
        Assert.Contains(FailingUploadStorage.Message, stats.FailureMessage, StringComparison.Ordinal);
    }

    /// <summary>Storage that refuses every file upload (the keyed state's files); other writes, such as manifests, work.</summary>
    private sealed class FailingUploadStorage(ICheckpointStorage inner) : DelegatingCheckpointStorage(inner)
    {
        public const string Message = "uploads are refused by the test";

        public override Task<StoredObject> UploadFileAsync(string localPath, string path, CancellationToken cancellationToken) =>
            Task.FromException<StoredObject>(new CheckpointStorageException(Message));
    }
}
