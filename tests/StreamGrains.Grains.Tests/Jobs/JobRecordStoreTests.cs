using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Serialization;
using StreamGrains.Grains.Jobs;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Tests;

public sealed class JobRecordStoreTests : IDisposable
{
    private static readonly JobId Job = new("recorded");
    private readonly TempStorage _storage = new();
    private readonly ServiceProvider _services = new ServiceCollection().AddSerializer().BuildServiceProvider();

    public void Dispose()
    {
        _services.Dispose();
        _storage.Dispose();
    }

    [Fact]
    public async Task A_written_record_reads_back_and_a_job_never_submitted_has_none()
    {
        var store = Store(_storage.Storage);
        var record = new JobRecord { Spec = PlannerJobs.Spec(), State = JobState.Running, Attempt = 3, Restarts = 2, Failure = JobFailure.Of(JobFailureKind.SiloLost, "gone", 1) };
        record.Placement["0/0"] = "silo-a";

        Assert.True(await store.WriteAsync(Job, record));
        var read = await store.ReadAsync(Job, CancellationToken.None);

        Assert.NotNull(read);
        Assert.Equal((JobState.Running, 3, 2), (read.State, read.Attempt, read.Restarts));
        Assert.Equal(record.Failure, read.Failure);
        Assert.Equal("silo-a", read.Placement["0/0"]);
        Assert.Null(await store.ReadAsync(new JobId("never"), CancellationToken.None));
    }

    [Theory]
    [InlineData("SiloLost", JobFailureKind.SiloLost)]
    [InlineData("JobGrainLost", JobFailureKind.JobGrainLost)]
    [InlineData("RestoreFailed", JobFailureKind.RestoreFailed)]
    [InlineData("CheckpointFailures", JobFailureKind.CheckpointFailures)]
    [InlineData("CheckpointStorageException", JobFailureKind.Storage)]
    public async Task A_failure_recorded_with_an_invented_exception_name_reads_back_as_its_kind(string invented, JobFailureKind kind)
    {
        var store = Store(_storage.Storage);
        await store.WriteAsync(Job, new JobRecord { Spec = PlannerJobs.Spec(), State = JobState.Failed, Failure = new JobFailure { ExceptionType = invented, Message = "from an older version" } });

        var failure = (await store.ReadAsync(Job, CancellationToken.None))!.Failure!;

        Assert.Equal(kind, failure.Kind);
        Assert.Null(failure.ExceptionType);
        Assert.Equal("from an older version", failure.Message);
    }

    [Fact]
    public async Task A_failure_of_user_code_recorded_before_kinds_existed_keeps_its_exception_type()
    {
        var store = Store(_storage.Storage);
        await store.WriteAsync(Job, new JobRecord { Spec = PlannerJobs.Spec(), State = JobState.Failed, Failure = new JobFailure { ExceptionType = "System.InvalidOperationException", OperatorUid = "counts", Message = "boom" } });

        var failure = (await store.ReadAsync(Job, CancellationToken.None))!.Failure!;

        Assert.Equal(JobFailureKind.UserCode, failure.Kind);
        Assert.Equal("System.InvalidOperationException", failure.ExceptionType);
    }

    [Fact]
    public async Task A_record_storage_refuses_is_reported_as_not_written_and_unreadable_storage_throws()
    {
        var store = Store(new BrokenStorage(_storage.Storage));

        Assert.False(await store.WriteAsync(Job, new JobRecord { Spec = PlannerJobs.Spec() }));
        await Assert.ThrowsAsync<CheckpointStorageException>(() => store.ReadAsync(Job, CancellationToken.None));
    }

    private JobRecordStore Store(ICheckpointStorage storage) => new(storage, _services.GetRequiredService<Serializer>(), NullLogger.Instance);

    private sealed class BrokenStorage(ICheckpointStorage inner) : DelegatingCheckpointStorage(inner)
    {
        public override Task WriteAsync(string path, ReadOnlyMemory<byte> content, bool overwrite, CancellationToken cancellationToken) => throw new CheckpointStorageException("write refused (test)");

        public override Task<byte[]?> ReadAsync(string path, CancellationToken cancellationToken) => throw new CheckpointStorageException("read failed (test)");

        public override Task<string> WriteIfAsync(string path, ReadOnlyMemory<byte> content, string? expectedVersion, CancellationToken cancellationToken) => throw new CheckpointStorageException("write refused (test)");

        public override Task<VersionedObject?> ReadVersionedAsync(string path, CancellationToken cancellationToken) => throw new CheckpointStorageException("read failed (test)");
    }
}
