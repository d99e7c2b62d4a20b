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
/// from <see cref="WaitForCompletionAsync"/> when the job failed.
/// </remarks>
public sealed class StreamGrainsClient : IAsyncDisposable
{
    private static readonly TimeSpan LongPoll = TimeSpan.FromSeconds(10);
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

    /// <summary>Connects to a cluster through its gateways.</summary>
    /// <exception cref="ClusterConnectionException">When no gateway answers within <see cref="StreamGrainsClientOptions.ConnectTimeout"/>.</exception>
    public static async Task<StreamGrainsClient> ConnectAsync(StreamGrainsClientOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new StreamGrainsClientOptions();
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.UseOrleansClient(client => client
            .UseStaticClustering([.. options.Gateways])
            .Configure<Orleans.Configuration.ClusterOptions>(o =>
            {
                o.ClusterId = options.ClusterId;
                o.ServiceId = options.ServiceId;
            }));
        var host = builder.Build();
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(options.ConnectTimeout);
            await host.StartAsync(timeout.Token);
            return new StreamGrainsClient(host);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            host.Dispose();
            throw new ClusterConnectionException($"Could not connect to the StreamGrains cluster '{options.ClusterId}' at {string.Join(", ", options.Gateways)}: {ex.Message}", ex);
        }
    }

    /// <summary>Submits a job; returns its id once the cluster accepted it (it then deploys in the background).</summary>
    /// <exception cref="JobSubmissionException">When the spec or the job definition is invalid; nothing runs then.</exception>
    public async Task<JobId> SubmitAsync(JobSpec spec, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var id = spec.JobId ?? JobId.New();
        var result = await Job(id).Submit(spec with { JobId = id }).WaitAsync(cancellationToken);
        return result.Accepted ? result.JobId : throw new JobSubmissionException(result.JobId, result.Errors);
    }

    /// <summary>The job's status, with fresh per-subtask counters when <paramref name="refreshSubtasks"/> is true.</summary>
    /// <exception cref="JobNotFoundException">When no such job exists.</exception>
    public async Task<JobStatus> GetStatusAsync(JobId jobId, bool refreshSubtasks = true, CancellationToken cancellationToken = default) =>
        await Job(jobId).GetStatus(refreshSubtasks).WaitAsync(cancellationToken) ?? throw new JobNotFoundException(jobId);

    /// <summary>Cancels the job and returns its status.</summary>
    /// <exception cref="JobNotFoundException">When no such job exists.</exception>
    public async Task<JobStatus> CancelAsync(JobId jobId, CancellationToken cancellationToken = default) =>
        await Job(jobId).Cancel().WaitAsync(cancellationToken) ?? throw new JobNotFoundException(jobId);

    /// <summary>Waits until the job reaches <paramref name="state"/> or a terminal state; returns that status.</summary>
    /// <exception cref="JobNotFoundException">When no such job exists.</exception>
    /// <exception cref="TimeoutException">When <paramref name="timeout"/> passes first.</exception>
    public async Task<JobStatus> WaitForStateAsync(JobId jobId, JobState state, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        var job = Job(jobId);
        var status = await job.GetStatus(false) ?? throw new JobNotFoundException(jobId);
        try
        {
            while (status.State != state && !status.State.IsTerminal())
            {
                status = await job.WaitForChange(status.Version, LongPoll).WaitAsync(cts.Token) ?? throw new JobNotFoundException(jobId);
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
        var status = await job.GetStatus(progress is not null) ?? throw new JobNotFoundException(jobId);
        try
        {
            while (!status.State.IsTerminal())
            {
                progress?.Report(status);
                status = await job.WaitForChange(status.Version, interval).WaitAsync(cts.Token) ?? throw new JobNotFoundException(jobId);
                if (progress is not null && !status.State.IsTerminal())
                {
                    status = await job.GetStatus(true).WaitAsync(cts.Token) ?? throw new JobNotFoundException(jobId);
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
    public async Task<Snapshots.CheckpointStats> TriggerCheckpointAsync(JobId jobId, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        _ = await GetStatusAsync(jobId, refreshSubtasks: false, cancellationToken);
        var deadline = DateTimeOffset.UtcNow + timeout;

        // Each call waits a bounded time (checkpoints of large state outlast a grain call's response timeout).
        var stats = await Job(jobId).TriggerCheckpoint(CheckpointPollWait(deadline)).WaitAsync(cancellationToken);
        while (stats.Outcome == Snapshots.CheckpointOutcome.InProgress)
        {
            if (DateTimeOffset.UtcNow >= deadline)
            {
                throw new TimeoutException($"Checkpoint {stats.CheckpointId} of job {jobId} is still in progress after {timeout}.");
            }

            stats = await Job(jobId).WaitForCheckpoint(stats.CheckpointId, CheckpointPollWait(deadline)).WaitAsync(cancellationToken);
        }

        return stats;
    }

    private static TimeSpan CheckpointPollWait(DateTimeOffset deadline)
    {
        var remaining = deadline - DateTimeOffset.UtcNow;
        return remaining < TimeSpan.Zero ? TimeSpan.Zero : remaining < TimeSpan.FromSeconds(10) ? remaining : TimeSpan.FromSeconds(10);
    }

    /// <summary>Waits until the job's status satisfies <paramref name="condition"/> (checked on every state change) or the job ends.</summary>
    /// <exception cref="TimeoutException">When <paramref name="timeout"/> passes first.</exception>
    public async Task<JobStatus> WaitForAsync(JobId jobId, Func<JobStatus, bool> condition, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(condition);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        var job = Job(jobId);
        var status = await job.GetStatus(false) ?? throw new JobNotFoundException(jobId);
        try
        {
            while (!condition(status) && !status.State.IsTerminal())
            {
                status = await job.WaitForChange(status.Version, LongPoll).WaitAsync(cts.Token) ?? throw new JobNotFoundException(jobId);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"Job '{jobId}' did not reach the expected condition within {timeout}; it is {status.State} in attempt {status.Attempt}.");
        }

        return status;
    }

    /// <summary>Reads what the collect sink named <paramref name="sinkName"/> of the job received.</summary>
    public Task<IReadOnlyList<T>> ReadCollectedAsync<T>(JobId jobId, string sinkName, CancellationToken cancellationToken = default) =>
        CollectedResults.ReadAsync<T>(Grains, jobId, sinkName, cancellationToken);

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
