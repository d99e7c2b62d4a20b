using System.Collections.Concurrent;
using System.Net;
using StreamGrains.Grains.Jobs;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;

namespace StreamGrains.Grains.Tests;

/// <summary>
/// A subtask gateway that records every call; deploys are accepted at once, and polls of the deploy state answer what the
/// test chooses (by default the outcome at once).
/// </summary>
internal sealed class RecordingSubtaskGateway : ISubtaskGateway
{
    public ConcurrentQueue<string> Calls { get; } = new();

    public ConcurrentDictionary<SubtaskId, SubtaskDeployment> Deployed { get; } = new();

    public ConcurrentDictionary<SubtaskId, SiloAddress> Hints { get; } = new();

    /// <summary>The status each subtask answers (null: it does not answer).</summary>
    public ConcurrentDictionary<SubtaskId, SubtaskStatus?> Statuses { get; } = new();

    /// <summary>The deploy state each subtask answers to a poll (null: it does not answer).</summary>
    public ConcurrentDictionary<SubtaskId, SubtaskDeployState?> DeployStates { get; } = new();

    /// <summary>When set, deployed subtasks answer polls as still opening until the test completes them with <see cref="CompleteDeploy"/>; otherwise with their outcome at once.</summary>
    public bool HoldDeploys { get; init; }

    public Func<SubtaskDeployment, DeployResult?>? Answer { get; init; }

    /// <summary>The exception a deploy call fails with (null: the subtask accepts).</summary>
    public Func<SubtaskDeployment, Exception?>? Refuse { get; init; }

    public Task DeployAsync(SiloAddress silo, SubtaskDeployment deployment)
    {
        Calls.Enqueue($"deploy {deployment.Subtask.Chain}/{deployment.Subtask.Index}");
        Deployed[deployment.Subtask] = deployment;
        Hints[deployment.Subtask] = silo;
        if (Refuse?.Invoke(deployment) is { } refused)
        {
            return Task.FromException(refused);
        }

        DeployStates[deployment.Subtask] = HoldDeploys
            ? new SubtaskDeployState { Phase = SubtaskDeployPhase.Opening, Silo = silo.ToString() }
            : Done(Answer?.Invoke(deployment) ?? Ready(silo));
        return Task.CompletedTask;
    }

    /// <summary>Polls of <paramref name="subtask"/> answer from now on that its deployment ended with <paramref name="result"/>.</summary>
    public void CompleteDeploy(SubtaskId subtask, DeployResult result) => DeployStates[subtask] = Done(result);

    /// <summary>Released once for every poll of a deploy state.</summary>
    public SemaphoreSlim Polls { get; } = new(0);

    public Task<SubtaskDeployState?> GetDeployStateAsync(SubtaskId subtask)
    {
        Calls.Enqueue($"poll {subtask.Chain}/{subtask.Index}/a{subtask.Attempt}");
        Polls.Release();
        return Task.FromResult(DeployStates.TryGetValue(subtask, out var state) ? state : null);
    }

    public Task StartAsync(SubtaskId subtask)
    {
        Calls.Enqueue($"start {subtask.Chain}/{subtask.Index}");
        return Task.CompletedTask;
    }

    public Task<SubtaskStatus?> GetStatusAsync(SubtaskId subtask)
    {
        Calls.Enqueue($"status {subtask.Chain}/{subtask.Index}/a{subtask.Attempt}");
        return Task.FromResult(Statuses.TryGetValue(subtask, out var status) ? status : null);
    }

    public Task CancelAsync(SubtaskId subtask, StopReason reason)
    {
        Calls.Enqueue($"cancel {subtask.Chain}/{subtask.Index}/a{subtask.Attempt} {reason}");
        return Task.CompletedTask;
    }

    public static DeployResult Ready(SiloAddress silo) => new() { Silo = silo.ToString() };

    public static SubtaskDeployState Done(DeployResult result) => new() { Phase = SubtaskDeployPhase.Done, Result = result, Silo = result.Silo };

    public static SiloAddress Silo(int port) => SiloAddress.New(new IPEndPoint(IPAddress.Loopback, port), 1);
}

/// <summary>A checkpoint coordinator that records starts and stops (the job parts only start and stop it).</summary>
internal sealed class RecordingCoordinator : ICheckpointCoordinatorGrain
{
    public ConcurrentQueue<CoordinatorStart> Starts { get; } = new();

    public ConcurrentQueue<int> Stops { get; } = new();

    /// <summary>Runs when a start arrives (a test moves the job on here).</summary>
    public Action? OnStart { get; init; }

    public Task Start(CoordinatorStart start)
    {
        Starts.Enqueue(start);
        OnStart?.Invoke();
        return Task.CompletedTask;
    }

    public Task Stop(int attempt)
    {
        Stops.Enqueue(attempt);
        return Task.CompletedTask;
    }

    public Task Acknowledge(int attempt, SubtaskCheckpointAck ack) => throw new NotSupportedException();

    public Task Decline(int attempt, long checkpointId, SubtaskId subtask, CheckpointDeclineReason reason, string message) => throw new NotSupportedException();

    public Task<CheckpointStats> TriggerNow(int attempt, TimeSpan maxWait) => throw new NotSupportedException();

    public Task<CheckpointStats> WaitFor(long checkpointId, TimeSpan maxWait) => throw new NotSupportedException();

    public Task<(CheckpointStats? Latest, IReadOnlyList<CheckpointStats> Recent)> GetStats() => throw new NotSupportedException();

    public Task<IReadOnlyList<CompletedCheckpoint>> GetCompletedCheckpoints() => throw new NotSupportedException();

    public Task Discard(long checkpointId, string reason) => throw new NotSupportedException();

    public Task DeleteAll() => throw new NotSupportedException();

    public Task<SavepointStatus> TriggerSavepoint(int attempt, SavepointRequest request, TimeSpan maxWait) => throw new NotSupportedException();

    public Task<SavepointStatus> WaitForSavepoint(long checkpointId, TimeSpan maxWait) => throw new NotSupportedException();

    public Task<SavepointStatus?> GetLatestSavepoint() => throw new NotSupportedException();

    /// <summary>Answers <see cref="TriggerStopCheckpoint"/> (a planned move's checkpoint).</summary>
    public Func<int, Task<CheckpointStats>>? StopCheckpoint { get; init; }

    public ConcurrentQueue<int> StopCheckpoints { get; } = new();

    public Task<CheckpointStats> TriggerStopCheckpoint(int attempt, TimeSpan maxWait)
    {
        StopCheckpoints.Enqueue(attempt);
        return StopCheckpoint?.Invoke(attempt) ?? throw new NotSupportedException();
    }

    public Task<(int Attempt, long Epoch)> GetAttempt() => throw new NotSupportedException();
}

/// <summary>Filesystem checkpoint storage in a directory of its own under the temp path, deleted on dispose.</summary>
internal sealed class TempStorage : IDisposable
{
    public TempStorage()
    {
        Root = Path.Combine(Path.GetTempPath(), "streamgrains-job-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Root);
        Storage = new State.Storage.FileSystemCheckpointStorage(Root);
    }

    public string Root { get; }

    public State.Storage.FileSystemCheckpointStorage Storage { get; }

    /// <summary>Writes a small object at <paramref name="path"/>.</summary>
    public Task PutAsync(string path, string content = "x") => Storage.WriteAsync(path, System.Text.Encoding.UTF8.GetBytes(content), overwrite: true, CancellationToken.None);

    /// <summary>Writes the manifest and every file of <paramref name="checkpoint"/>.</summary>
    public async Task PutAsync(CompletedCheckpoint checkpoint)
    {
        await Storage.WriteAsync(checkpoint.ManifestPath, State.Snapshots.ManifestJson.Serialize(checkpoint.Manifest), overwrite: true, CancellationToken.None);
        foreach (var file in checkpoint.Manifest.Files())
        {
            await PutAsync(file.Path);
        }
    }

    public void Dispose()
    {
        if (Directory.Exists(Root))
        {
            Directory.Delete(Root, recursive: true);
        }
    }
}
