using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using StreamGrains.Connectors;
using StreamGrains.Runtime;

namespace StreamGrains.Client;

/// <summary>Where the client finds the cluster.</summary>
public sealed record StreamGrainsClientOptions
{
    /// <summary>Gateway endpoints of the silos. Default: the local silo's default gateway, 127.0.0.1:30000.</summary>
    public IReadOnlyList<IPEndPoint> Gateways { get; init; } = [new(IPAddress.Loopback, 30000)];

    /// <summary>The cluster's id (must match the silos'). Default "streamgrains".</summary>
    public string ClusterId { get; init; } = "streamgrains";

    /// <summary>The service's id (must match the silos'). Default "streamgrains".</summary>
    public string ServiceId { get; init; } = "streamgrains";

    /// <summary>How long to try to connect before giving up. Default 30 s.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// Submits, watches and cancels jobs on a StreamGrains cluster.
/// </summary>
/// <remarks>
/// Create it with <see cref="ConnectAsync"/> (it then owns its connection) or around an existing Orleans
/// <see cref="IGrainFactory"/> (a silo host, a test cluster). Errors are typed: <see cref="JobSubmissionException"/>
/// when a job is rejected, <see cref="JobNotFoundException"/> for an unknown id, <see cref="JobFailedException"/>
/// from <see cref="WaitForCompletionAsync"/> when the job failed. While a silo fails, calls can find the cluster
/// unreachable for some seconds: calls that are safe to repeat (status, waits, cancel, reads) are retried with back-off
/// for up to <see cref="TransientRetryTime"/> (or until their own timeout), calls that are not (submit, savepoint
/// trigger, savepoint disposal) are not; either way an unreachable cluster surfaces as
/// <see cref="ClusterUnavailableException"/>, never as a raw Orleans exception.
/// </remarks>
public sealed class StreamGrainsClient : IAsyncDisposable
{
    private static readonly TimeSpan LongPoll = TimeSpan.FromSeconds(10);

    /// <summary>The longest wait for the TCP connect to one gateway before the Orleans client starts.</summary>
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(5);
    private readonly IHost? _host;

    /// <summary>Wraps an existing grain factory (of a silo host or a connected cluster client).</summary>
    public StreamGrainsClient(IGrainFactory grains)
    {
        ArgumentNullException.ThrowIfNull(grains);
        Grains = grains;
    }

    private StreamGrainsClient(IHost host)
        : this(host.Services.GetRequiredService<IClusterClient>()) => _host = host;

    /// <summary>The grain factory the client talks through.</summary>
    public IGrainFactory Grains { get; }

    /// <summary>
    /// How long a call that is safe to repeat keeps being retried while the cluster is unreachable (a silo failed and
    /// the cluster has not noticed yet) before it throws <see cref="ClusterUnavailableException"/>, counted from its first
    /// failure (a try through a killed silo's gateway fails only at Orleans' 30 s response timeout). Default 20 s.
    /// </summary>
    public TimeSpan TransientRetryTime { get; init; } = TimeSpan.FromSeconds(20);

    private TransientCallRetry Retry => new(TransientRetryTime, TimeProvider.System);

    /// <summary>Connects to a cluster through its gateways.</summary>
    /// <remarks>
    /// First opens a TCP connection to every gateway and watches it for a moment: when none accepts, it fails at once
    /// with <see cref="ClusterConnectionFailure.NothingListening"/>; when those that accept send data first or close the
    /// connection (an Orleans gateway waits for the client), with <see cref="ClusterConnectionFailure.HandshakeFailed"/>.
    /// Then it connects with Orleans and fails as soon as every gateway that accepted has rejected the client twice
    /// (<see cref="ClusterConnectionFailure.WrongClusterId"/>, <see cref="ClusterConnectionFailure.HandshakeFailed"/>),
    /// instead of waiting for the timeout.
    /// </remarks>
    /// <exception cref="ClusterConnectionException">When no gateway answers within <see cref="StreamGrainsClientOptions.ConnectTimeout"/>; <see cref="ClusterConnectionException.Reason"/> says why.</exception>
    public static async Task<StreamGrainsClient> ConnectAsync(StreamGrainsClientOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new StreamGrainsClientOptions();
        var started = TimeProvider.System.GetTimestamp();
        var what = $"Could not connect to the StreamGrains cluster '{options.ClusterId}' at {string.Join(", ", options.Gateways)}";
        var probeTimeout = options.ConnectTimeout < ProbeTimeout ? options.ConnectTimeout : ProbeTimeout;
        var probes = await GatewayProbe.ProbeAsync(options.Gateways, probeTimeout, cancellationToken);
        var listening = probes.Where(static p => p.Outcome == ProbeOutcome.Quiet).Select(static p => p.Gateway).ToList();
        if (listening.Count == 0)
        {
            var details = string.Join(", ", probes.Select(static p => $"{p.Gateway} ({p.Detail})"));
            throw probes.Any(static p => p.Outcome == ProbeOutcome.NotOrleans)
                ? new ClusterConnectionException($"{what}: {Describe(ClusterConnectionFailure.HandshakeFailed, details)}", null, ClusterConnectionFailure.HandshakeFailed)
                : new ClusterConnectionException($"{what}: nothing listening at {details}.", null, ClusterConnectionFailure.NothingListening);
        }

        var recorder = new GatewayFailureRecorder(listening);
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(recorder);
        builder.Logging.AddFilter<GatewayFailureRecorder>(null, LogLevel.Information);
        builder.UseOrleansClient(client => client
            .UseStaticClustering([.. options.Gateways])
            .Configure<Orleans.Configuration.ClusterOptions>(o =>
            {
                o.ClusterId = options.ClusterId;
                o.ServiceId = options.ServiceId;
            }));
        var host = builder.Build();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            var remaining = options.ConnectTimeout - TimeProvider.System.GetElapsedTime(started);
            timeout.CancelAfter(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero);
            var start = host.StartAsync(timeout.Token);
            if (await Task.WhenAny(start, recorder.AllFailed) != start)
            {
                await timeout.CancelAsync();
                await start.WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ContinueWith(static _ => { }, TaskScheduler.Default);
                var (reason, detail) = await recorder.AllFailed;
                host.Dispose();
                throw new ClusterConnectionException($"{what}: {Describe(reason, detail)}", null, reason);
            }

            await start;
            recorder.Stop();
            return new StreamGrainsClient(host);
        }
        catch (Exception ex) when (ex is not ClusterConnectionException && (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested))
        {
            host.Dispose();
            var (reason, detail) = recorder.Failures.Count > 0
                ? recorder.Failures.Values.First()
                : recorder.Established
                    ? (ClusterConnectionFailure.TimedOut, $"the gateways answered but connecting did not complete within {options.ConnectTimeout} ({ex.Message})")
                    : (ClusterConnectionFailure.HandshakeFailed, $"{string.Join(", ", listening)} accepted TCP connections but no Orleans handshake completed within {options.ConnectTimeout}");
            throw new ClusterConnectionException($"{what}: {Describe(reason, detail)}", ex, reason);
        }
    }

    private static string Describe(ClusterConnectionFailure reason, string detail) => reason switch
    {
        ClusterConnectionFailure.WrongClusterId => $"wrong cluster id (the gateway belongs to another cluster): {detail}.",
        ClusterConnectionFailure.NothingListening => $"nothing listening: {detail}.",
        ClusterConnectionFailure.HandshakeFailed => $"TLS/handshake failed (is it an Orleans gateway, with the same TLS setting?): {detail}.",
        _ => detail + ".",
    };

    /// <summary>Submits a job; returns its id once the cluster accepted it (it then deploys in the background).</summary>
    /// <exception cref="JobSubmissionException">When the spec or the job definition is invalid; nothing runs then.</exception>
    /// <exception cref="ClusterUnavailableException">When the cluster was unreachable; the job may or may not have been submitted (it is not retried).</exception>
    public async Task<JobId> SubmitAsync(JobSpec spec, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var id = spec.JobId ?? JobId.New();
        var result = await TransientCallRetry.RunOnceAsync($"Submitting job '{id}'", () => Job(id).Submit(spec with { JobId = id }).WaitAsync(cancellationToken));
        return result.Accepted ? result.JobId : throw new JobSubmissionException(result.JobId, result.Errors);
    }

    /// <summary>The job's status, with fresh per-subtask counters when <paramref name="refreshSubtasks"/> is true.</summary>
    /// <exception cref="JobNotFoundException">When no such job exists.</exception>
    /// <exception cref="ClusterUnavailableException">When the cluster stayed unreachable for <see cref="TransientRetryTime"/>.</exception>
    public async Task<JobStatus> GetStatusAsync(JobId jobId, bool refreshSubtasks = true, CancellationToken cancellationToken = default) =>
        await Retry.RunAsync($"Reading the status of job '{jobId}'", () => Job(jobId).GetStatus(refreshSubtasks).WaitAsync(cancellationToken), cancellationToken) ?? throw new JobNotFoundException(jobId);

    /// <summary>Cancels the job and returns its status.</summary>
    /// <exception cref="JobNotFoundException">When no such job exists.</exception>
    /// <exception cref="ClusterUnavailableException">When the cluster stayed unreachable for <see cref="TransientRetryTime"/>.</exception>
    public async Task<JobStatus> CancelAsync(JobId jobId, CancellationToken cancellationToken = default) =>
        await Retry.RunAsync($"Cancelling job '{jobId}'", () => Job(jobId).Cancel().WaitAsync(cancellationToken), cancellationToken) ?? throw new JobNotFoundException(jobId);

    /// <summary>Waits until the job reaches <paramref name="state"/> or a terminal state; returns that status.</summary>
    /// <exception cref="JobNotFoundException">When no such job exists.</exception>
    /// <exception cref="TimeoutException">When <paramref name="timeout"/> passes first.</exception>
    /// <exception cref="ClusterUnavailableException">When the cluster stayed unreachable for <see cref="TransientRetryTime"/>.</exception>
    public async Task<JobStatus> WaitForStateAsync(JobId jobId, JobState state, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        var job = Job(jobId);
        var status = await Retry.RunAsync($"Reading the status of job '{jobId}'", () => job.GetStatus(false).WaitAsync(cancellationToken), cancellationToken) ?? throw new JobNotFoundException(jobId);
        try
        {
            while (status.State != state && !status.State.IsTerminal())
            {
                var version = status.Version;
                status = await Retry.RunAsync($"Watching job '{jobId}'", () => job.WaitForChange(version, LongPoll).WaitAsync(cts.Token), cts.Token) ?? throw new JobNotFoundException(jobId);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"Job '{jobId}' did not reach {state} within {timeout}; it is {status.State}.");
        }

        return status;
    }

    /// <summary>
    /// Waits until the job ends, reporting fresh status to <paramref name="progress"/> every <paramref name="progressInterval"/>.
    /// </summary>
    /// <returns>The final status when the job finished or was cancelled.</returns>
    /// <exception cref="JobFailedException">When the job failed.</exception>
    /// <exception cref="TimeoutException">When <paramref name="timeout"/> passes first.</exception>
    /// <exception cref="ClusterUnavailableException">When the cluster stayed unreachable for <see cref="TransientRetryTime"/>.</exception>
    public async Task<JobStatus> WaitForCompletionAsync(
        JobId jobId,
        TimeSpan timeout,
        IProgress<JobStatus>? progress = null,
        TimeSpan? progressInterval = null,
        CancellationToken cancellationToken = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        var job = Job(jobId);
        var interval = progressInterval ?? LongPoll;
        var status = await Retry.RunAsync($"Reading the status of job '{jobId}'", () => job.GetStatus(progress is not null).WaitAsync(cancellationToken), cancellationToken) ?? throw new JobNotFoundException(jobId);
        try
        {
            while (!status.State.IsTerminal())
            {
                progress?.Report(status);
                var version = status.Version;
                status = await Retry.RunAsync($"Watching job '{jobId}'", () => job.WaitForChange(version, interval).WaitAsync(cts.Token), cts.Token) ?? throw new JobNotFoundException(jobId);
                if (progress is not null && !status.State.IsTerminal())
                {
                    status = await Retry.RunAsync($"Reading the status of job '{jobId}'", () => job.GetStatus(true).WaitAsync(cts.Token), cts.Token) ?? throw new JobNotFoundException(jobId);
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"Job '{jobId}' did not complete within {timeout}; it is {status.State}.");
        }

        progress?.Report(status);
        return status.State == JobState.Failed ? throw new JobFailedException(status) : status;
    }

    /// <summary>Takes a checkpoint now and waits until it completed or was aborted.</summary>
    /// <exception cref="JobNotFoundException">When no such job exists.</exception>
    /// <exception cref="InvalidOperationException">When the job is not running or has checkpointing disabled.</exception>
    /// <exception cref="TimeoutException">When the checkpoint is still in progress after <paramref name="timeout"/>.</exception>
    /// <exception cref="ClusterUnavailableException">When the cluster stayed unreachable for <see cref="TransientRetryTime"/>.</exception>
    public async Task<Snapshots.CheckpointStats> TriggerCheckpointAsync(JobId jobId, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        _ = await GetStatusAsync(jobId, refreshSubtasks: false, cancellationToken);
        var deadline = DateTimeOffset.UtcNow + timeout;

        // Each call waits a bounded time (checkpoints of large state outlast a grain call's response timeout).
        var stats = await Retry.RunAsync($"Triggering a checkpoint of job '{jobId}'", () => Job(jobId).TriggerCheckpoint(CheckpointPollWait(deadline)).WaitAsync(cancellationToken), cancellationToken);
        while (stats.Outcome == Snapshots.CheckpointOutcome.InProgress)
        {
            if (DateTimeOffset.UtcNow >= deadline)
            {
                throw new TimeoutException($"Checkpoint {stats.CheckpointId} of job {jobId} is still in progress after {timeout}.");
            }

            var checkpointId = stats.CheckpointId;
            stats = await Retry.RunAsync($"Waiting for checkpoint {checkpointId} of job '{jobId}'", () => Job(jobId).WaitForCheckpoint(checkpointId, CheckpointPollWait(deadline)).WaitAsync(cancellationToken), cancellationToken);
        }

        return stats;
    }

    /// <summary>
    /// Takes a savepoint and waits for it to end, reporting progress (snapshot, then files copied) to
    /// <paramref name="progress"/>. With <see cref="Snapshots.SavepointRequest.Then"/> the job stops or is cancelled after
    /// it; then this also waits until the job has ended.
    /// </summary>
    /// <returns>The completed savepoint; <see cref="Snapshots.SavepointStatus.Directory"/> is what <see cref="JobSpec.RestoreFrom"/> takes.</returns>
    /// <exception cref="SavepointFailedException">The savepoint failed; the job keeps running.</exception>
    /// <exception cref="InvalidOperationException">The job is not running, has checkpointing off, or already takes a savepoint.</exception>
    /// <exception cref="TimeoutException">The savepoint did not end within <paramref name="timeout"/>.</exception>
    /// <exception cref="ClusterUnavailableException">When the cluster stayed unreachable for <see cref="TransientRetryTime"/>.</exception>
    public async Task<Snapshots.SavepointStatus> TriggerSavepointAsync(JobId jobId, Snapshots.SavepointRequest request, TimeSpan timeout, IProgress<Snapshots.SavepointStatus>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        _ = await GetStatusAsync(jobId, refreshSubtasks: false, cancellationToken);
        var deadline = DateTimeOffset.UtcNow + timeout;
        var status = await TransientCallRetry.RunOnceAsync($"Triggering a savepoint of job '{jobId}'", () => Job(jobId).TriggerSavepoint(request, TimeSpan.FromSeconds(1)).WaitAsync(cancellationToken));
        progress?.Report(status);
        while (!status.IsDone)
        {
            if (DateTimeOffset.UtcNow >= deadline)
            {
                throw new TimeoutException($"The savepoint of job {jobId} is still in progress after {timeout}: {status}.");
            }

            // Short waits so that progress is reported about once a second.
            var checkpointId = status.CheckpointId;
            try
            {
                status = await Retry.RunAsync($"Waiting for the savepoint of job '{jobId}'", () => Job(jobId).WaitForSavepoint(checkpointId, CheckpointPollWait(deadline) < TimeSpan.FromSeconds(1) ? CheckpointPollWait(deadline) : TimeSpan.FromSeconds(1)).WaitAsync(cancellationToken), cancellationToken);
            }
            catch (InvalidOperationException ex) when (ex.Message.Contains("has no record of a savepoint", StringComparison.Ordinal))
            {
                // The job grain and the coordinator that knew the savepoint were both lost with their silos: it cannot complete.
                status = status with { Phase = Snapshots.SavepointPhase.Failed, FailureMessage = $"the savepoint was lost with the silo of its job grain or checkpoint coordinator and did not complete ({ex.Message})" };
            }

            progress?.Report(status);
        }

        if (status.Phase == Snapshots.SavepointPhase.Failed)
        {
            throw new SavepointFailedException(jobId, status);
        }

        if (request.Then != Snapshots.SavepointThen.KeepRunning)
        {
            var remaining = deadline - DateTimeOffset.UtcNow;
            await WaitForAsync(jobId, static s => s.State.IsTerminal(), remaining > TimeSpan.FromSeconds(30) ? remaining : TimeSpan.FromSeconds(30), cancellationToken);
        }

        return status;
    }

    /// <summary>Stop with savepoint: sources stop, in-flight records drain, the state is saved and the job ends.</summary>
    /// <exception cref="SavepointFailedException">The savepoint failed; the job keeps running and the exception says why.</exception>
    public Task<Snapshots.SavepointStatus> StopWithSavepointAsync(JobId jobId, TimeSpan timeout, Snapshots.SavepointFormat format = Snapshots.SavepointFormat.Native, string? directory = null, IProgress<Snapshots.SavepointStatus>? progress = null, CancellationToken cancellationToken = default) =>
        TriggerSavepointAsync(jobId, new Snapshots.SavepointRequest { Format = format, Directory = directory, Then = Snapshots.SavepointThen.Stop }, timeout, progress, cancellationToken);

    /// <summary>Cancel with savepoint: the job is cancelled once the savepoint is complete.</summary>
    /// <exception cref="SavepointFailedException">The savepoint failed; the job keeps running.</exception>
    public Task<Snapshots.SavepointStatus> CancelWithSavepointAsync(JobId jobId, TimeSpan timeout, Snapshots.SavepointFormat format = Snapshots.SavepointFormat.Native, string? directory = null, IProgress<Snapshots.SavepointStatus>? progress = null, CancellationToken cancellationToken = default) =>
        TriggerSavepointAsync(jobId, new Snapshots.SavepointRequest { Format = format, Directory = directory, Then = Snapshots.SavepointThen.Cancel }, timeout, progress, cancellationToken);

    /// <summary>The savepoints in checkpoint storage under <c>savepoints/</c> (of one job when given), newest first.</summary>
    /// <exception cref="ClusterUnavailableException">When the cluster stayed unreachable for <see cref="TransientRetryTime"/>.</exception>
    public Task<IReadOnlyList<Snapshots.SavepointInfo>> ListSavepointsAsync(JobId? jobId = null, CancellationToken cancellationToken = default) =>
        Retry.RunAsync("Listing savepoints", () => Grains.GetGrain<ISavepointStoreGrain>("savepoints").List(jobId?.Value).WaitAsync(cancellationToken), cancellationToken);

    /// <summary>Deletes a savepoint (its manifest first, then its files).</summary>
    /// <exception cref="InvalidOperationException">There is no savepoint in <paramref name="directory"/>.</exception>
    /// <exception cref="ClusterUnavailableException">When the cluster was unreachable; the savepoint may or may not have been deleted.</exception>
    public Task DisposeSavepointAsync(string directory, CancellationToken cancellationToken = default) =>
        TransientCallRetry.RunOnceAsync($"Deleting savepoint '{directory}'", async () =>
        {
            await Grains.GetGrain<ISavepointStoreGrain>("savepoints").Dispose(directory).WaitAsync(cancellationToken);
            return true;
        });

    /// <summary>
    /// Redeploys a running job as <paramref name="newSpec"/> (another parallelism, changed code or topology): stops it
    /// with a savepoint and submits <paramref name="newSpec"/> restoring from it. When the savepoint fails the job keeps
    /// running and <see cref="SavepointFailedException"/> says why — unless
    /// <see cref="UpgradeOptions.FallBackToLatestCheckpoint"/> is set: then the job is cancelled keeping its checkpoints
    /// and the new one restores from its latest completed checkpoint.
    /// </summary>
    /// <returns>The new job's id and what it restored from.</returns>
    public async Task<UpgradeResult> UpgradeAsync(JobId jobId, JobSpec newSpec, UpgradeOptions? options = null, IProgress<Snapshots.SavepointStatus>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(newSpec);
        options ??= new UpgradeOptions();
        string restoreFrom;
        string? warning = null;
        try
        {
            var savepoint = await StopWithSavepointAsync(jobId, options.Timeout, options.Format, options.Directory, progress, cancellationToken);
            restoreFrom = savepoint.Directory;
        }
        catch (SavepointFailedException ex) when (options.FallBackToLatestCheckpoint)
        {
            var status = await GetStatusAsync(jobId, refreshSubtasks: false, cancellationToken);
            var latest = status.LatestCheckpoint?.ManifestPath ?? throw new InvalidOperationException($"Job {jobId} could not be stopped with a savepoint ({ex.Message}) and has no completed checkpoint to fall back to; it keeps running.", ex);
            await Retry.RunAsync($"Cancelling job '{jobId}'", async () =>
            {
                await Job(jobId).CancelKeepingCheckpoints().WaitAsync(cancellationToken);
                return true;
            }, cancellationToken);
            restoreFrom = latest;
            warning = $"The savepoint failed ({ex.Status.FailureMessage}); the job was cancelled and the new one restores from its latest checkpoint {latest}, so records after that checkpoint are processed again. The old job's checkpoints are kept; delete them when they are no longer needed.";
        }

        var id = await SubmitAsync(newSpec with { RestoreFrom = restoreFrom, JobId = newSpec.JobId == jobId ? null : newSpec.JobId }, cancellationToken);
        return new UpgradeResult(id, restoreFrom, warning);
    }

    private static TimeSpan CheckpointPollWait(DateTimeOffset deadline)
    {
        var remaining = deadline - DateTimeOffset.UtcNow;
        return remaining < TimeSpan.Zero ? TimeSpan.Zero : remaining < TimeSpan.FromSeconds(10) ? remaining : TimeSpan.FromSeconds(10);
    }

    /// <summary>Waits until the job's status satisfies <paramref name="condition"/> (checked on every state change) or the job ends.</summary>
    /// <exception cref="TimeoutException">When <paramref name="timeout"/> passes first.</exception>
    /// <exception cref="ClusterUnavailableException">When the cluster stayed unreachable for <see cref="TransientRetryTime"/>.</exception>
    public async Task<JobStatus> WaitForAsync(JobId jobId, Func<JobStatus, bool> condition, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(condition);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        var job = Job(jobId);
        var status = await Retry.RunAsync($"Reading the status of job '{jobId}'", () => job.GetStatus(false).WaitAsync(cancellationToken), cancellationToken) ?? throw new JobNotFoundException(jobId);
        try
        {
            while (!condition(status) && !status.State.IsTerminal())
            {
                var version = status.Version;
                status = await Retry.RunAsync($"Watching job '{jobId}'", () => job.WaitForChange(version, LongPoll).WaitAsync(cts.Token), cts.Token) ?? throw new JobNotFoundException(jobId);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"Job '{jobId}' did not reach the expected condition within {timeout}; it is {status.State} in attempt {status.Attempt}.");
        }

        return status;
    }

    /// <summary>Reads what the collect sink named <paramref name="sinkName"/> of the job received.</summary>
    /// <exception cref="ClusterUnavailableException">When the cluster stayed unreachable for <see cref="TransientRetryTime"/>.</exception>
    public Task<IReadOnlyList<T>> ReadCollectedAsync<T>(JobId jobId, string sinkName, CancellationToken cancellationToken = default) =>
        Retry.RunAsync($"Reading collect sink '{sinkName}' of job '{jobId}'", () => CollectedResults.ReadAsync<T>(Grains, jobId, sinkName, cancellationToken), cancellationToken);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.StopAsync();
            _host.Dispose();
        }
    }

    private IJobGrain Job(JobId jobId) => Grains.GetGrain<IJobGrain>(jobId.Value);
}

/// <summary>How <see cref="StreamGrainsClient.UpgradeAsync"/> redeploys a job.</summary>
public sealed record UpgradeOptions
{
    /// <summary>Format of the savepoint to stop with. Default native.</summary>
    public Snapshots.SavepointFormat Format { get; init; } = Snapshots.SavepointFormat.Native;

    /// <summary>When the savepoint fails, cancel the job and restore from its latest completed checkpoint instead of keeping it running.</summary>
    public bool FallBackToLatestCheckpoint { get; init; }

    /// <summary>Directory of the savepoint; the default location under <c>savepoints/</c> when null.</summary>
    public string? Directory { get; init; }

    /// <summary>How long the savepoint may take. Default 30 minutes.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(30);
}

/// <summary>The outcome of an upgrade.</summary>
/// <param name="JobId">The new job.</param>
/// <param name="RestoredFrom">The savepoint (or, after a fallback, the checkpoint) it restores from.</param>
/// <param name="Warning">Set when the upgrade fell back to the latest checkpoint.</param>
public sealed record UpgradeResult(JobId JobId, string RestoredFrom, string? Warning);
