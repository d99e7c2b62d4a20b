using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using Orleans.Runtime.Placement;
using StreamGrains.Connectors;
using StreamGrains.Grains.Placement;
using StreamGrains.Graph;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Jobs;

/// <summary>
/// Owns one job: validates the spec, plans placement, deploys the subtasks, starts them once all are ready (the restore
/// gate), and tracks their outcome.
/// </summary>
/// <remarks>
/// Reentrant: subtasks report to it while it awaits deploys, and status watchers wait on it. Every await is followed by
/// a check that the job is still in the state (and attempt) the awaiting code expects.
/// </remarks>
[GrainType("streamgrains.job")]
[Reentrant]
[CollectionAgeLimit(AlwaysActive = true)]
internal sealed class JobGrain(IClusterMembershipService membership, TimeProvider time, ILogger<JobGrain> logger) : Grain, IJobGrain
{
    private readonly Dictionary<SubtaskId, SubtaskStatus> _subtasks = [];
    private readonly HashSet<SubtaskId> _finished = [];
    private JobSpec? _spec;
    private JobPlan? _plan;
    private JobState _state;
    private long _version;
    private int _attempt;
    private JobFailure? _failure;
    private DateTimeOffset _submittedAt;
    private DateTimeOffset? _endedAt;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private JobId Id => new(this.GetPrimaryKeyString());

    public Task<SubmitResult> Submit(JobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var id = Id;
        if (spec.JobId is { } requested && requested != id)
        {
            return Rejected($"The spec names job '{requested}' but was sent to job '{id}'.");
        }

        if (_spec is not null)
        {
            return Rejected($"A job with id '{id}' already exists ({_state}); choose another id.");
        }

        if (spec.RestoreFrom is not null)
        {
            return Rejected("Restoring from a checkpoint or savepoint (RestoreFrom) is not supported yet.");
        }

        spec = spec with { JobId = id };
        JobPlan plan;
        Dictionary<int, IReadOnlyList<SourceSplit>[]> splits;
        try
        {
            plan = JobDefinitions.Plan(spec);
            splits = AssignSplits(plan, spec);
        }
        catch (JobValidationException ex)
        {
            return Task.FromResult(new SubmitResult { JobId = id, Errors = ex.Errors });
        }

        _spec = spec;
        _plan = plan;
        _attempt = 1;
        _submittedAt = time.GetUtcNow();
        logger.LogInformation("Job {Job} ({Type}) accepted: {Chains} chains, {Subtasks} subtasks", id, spec.JobType, plan.Chains.Count, plan.SubtaskCount);
        SetState(JobState.Deploying);
        _ = DeployAsync(spec, plan, splits, _attempt);
        return Task.FromResult(new SubmitResult { JobId = id });

        Task<SubmitResult> Rejected(string error) => Task.FromResult(new SubmitResult { JobId = id, Errors = [error] });
    }

    public async Task<JobStatus?> GetStatus(bool refreshSubtasks)
    {
        if (_spec is null)
        {
            return null;
        }

        if (refreshSubtasks && !_state.IsTerminal())
        {
            await RefreshSubtasksAsync();
        }

        return Snapshot();
    }

    public async Task<JobStatus?> WaitForChange(long knownVersion, TimeSpan maxWait)
    {
        if (_spec is null)
        {
            return null;
        }

        if (_version <= knownVersion)
        {
            await Task.WhenAny(_changed.Task, Task.Delay(maxWait, time));
        }

        return Snapshot();
    }

    public async Task<JobStatus?> Cancel()
    {
        if (_spec is null)
        {
            return null;
        }

        if (!_state.IsTerminal() && _state != JobState.Cancelling)
        {
            SetState(JobState.Cancelling);
            await ReleaseSubtasksAsync();
            SetState(JobState.Canceled);
        }

        return Snapshot();
    }

    public async Task OnSubtaskFinished(SubtaskId subtask)
    {
        if (subtask.Attempt != _attempt || _state != JobState.Running || !_finished.Add(subtask))
        {
            return;
        }

        if (_finished.Count == _plan!.SubtaskCount)
        {
            await ReleaseSubtasksAsync();
            if (_state == JobState.Running)
            {
                logger.LogInformation("Job {Job} finished", Id);
                SetState(JobState.Finished);
            }
        }
    }

    public async Task OnSubtaskFailed(SubtaskId subtask, JobFailure failure)
    {
        if (subtask.Attempt != _attempt || _state.IsTerminal() || _state == JobState.Cancelling)
        {
            return;
        }

        await FailAsync(failure);
    }

    private static Dictionary<int, IReadOnlyList<SourceSplit>[]> AssignSplits(JobPlan plan, JobSpec spec)
    {
        var result = new Dictionary<int, IReadOnlyList<SourceSplit>[]>();
        foreach (var chain in plan.Chains.Where(static c => c.IsSource))
        {
            IReadOnlyList<SourceSplit> all;
            try
            {
                all = chain.Head.Accept(new SplitEnumerator(new SplitEnumerationContext(chain.Parallelism, plan.MaxParallelism, spec.Parameters)));
            }
            catch (Exception ex)
            {
                throw new JobValidationException($"Source '{chain.Head.EffectiveUid}' could not enumerate its splits: {ex.Message}", ex);
            }

            var perSubtask = new IReadOnlyList<SourceSplit>[chain.Parallelism];
            for (var i = 0; i < chain.Parallelism; i++)
            {
                perSubtask[i] = all.Where((_, k) => k % chain.Parallelism == i).ToArray();
            }

            result[chain.Index] = perSubtask;
        }

        return result;
    }

    private async Task DeployAsync(JobSpec spec, JobPlan plan, Dictionary<int, IReadOnlyList<SourceSplit>[]> splits, int attempt)
    {
        try
        {
            var ids = plan.Chains.SelectMany(c => Enumerable.Range(0, c.Parallelism).Select(i => new SubtaskId(spec.JobId!.Value, c.Index, i, attempt))).ToArray();
            var silos = membership.CurrentSnapshot.Members.Values.Where(static m => m.Status == SiloStatus.Active).Select(static m => m.SiloAddress).ToArray();
            var placement = PlacementPlanner.Assign(silos, ids.Length);
            var deploys = new Task<DeployResult>[ids.Length];
            try
            {
                for (var i = 0; i < ids.Length; i++)
                {
                    var id = ids[i];
                    _subtasks[id] = new SubtaskStatus { Chain = plan.Chains[id.Chain].Name, Index = id.Index, Parallelism = plan.Chains[id.Chain].Parallelism, IsSource = plan.Chains[id.Chain].IsSource };
                    RequestContext.Set(IPlacementDirector.PlacementHintKey, placement[i]);
                    deploys[i] = GrainFactory.GetGrain<ISubtaskGrain>(id.GrainKey).Deploy(new SubtaskDeployment
                    {
                        Spec = spec,
                        Subtask = id,
                        Splits = splits.TryGetValue(id.Chain, out var chainSplits) ? chainSplits[id.Index] : [],
                    });
                }
            }
            finally
            {
                RequestContext.Remove(IPlacementDirector.PlacementHintKey);
            }

            var results = await Task.WhenAll(deploys);
            if (attempt != _attempt || _state != JobState.Deploying)
            {
                return;
            }

            for (var i = 0; i < ids.Length; i++)
            {
                _subtasks[ids[i]] = _subtasks[ids[i]] with { Silo = results[i].Silo, KeyGroups = results[i].KeyGroups, State = SubtaskState.Ready };
            }

            if (results.FirstOrDefault(static r => r.Failure is not null)?.Failure is { } failure)
            {
                await FailAsync(failure);
                return;
            }

            // Restore gate: nothing starts before every subtask reported its state ready.
            await Task.WhenAll(ids.Select(id => GrainFactory.GetGrain<ISubtaskGrain>(id.GrainKey).Start()));
            if (attempt == _attempt && _state == JobState.Deploying)
            {
                SetState(JobState.Running);
            }
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "Deploying job {Job} failed", Id);
            if (attempt == _attempt && !_state.IsTerminal())
            {
                await FailAsync(JobFailure.FromException(ex, operatorUid: null, subtaskIndex: -1));
            }
        }
    }

    private async Task FailAsync(JobFailure failure)
    {
        logger.LogWarning("Job {Job} failed: {Failure}", Id, failure);
        _failure = failure;
        SetState(JobState.Failed);
        await ReleaseSubtasksAsync();
    }

    /// <summary>Collects the subtasks' final counters, then stops them and frees their state.</summary>
    private async Task ReleaseSubtasksAsync()
    {
        await RefreshSubtasksAsync();
        var ids = _subtasks.Keys.Where(id => id.Attempt == _attempt).ToArray();
        await Task.WhenAll(ids.Select(async id =>
        {
            try
            {
                await GrainFactory.GetGrain<ISubtaskGrain>(id.GrainKey).Cancel();
            }
            catch (Exception ex)
            {
                logger.LogWarning(ex, "Stopping subtask {Subtask} failed", id);
            }
        }));
    }

    private async Task RefreshSubtasksAsync()
    {
        var ids = _subtasks.Keys.Where(id => id.Attempt == _attempt).ToArray();
        var statuses = await Task.WhenAll(ids.Select(async id =>
        {
            try
            {
                return await GrainFactory.GetGrain<ISubtaskGrain>(id.GrainKey).GetStatus().WaitAsync(TimeSpan.FromSeconds(10));
            }
            catch (Exception ex)
            {
                logger.LogDebug(ex, "Status of subtask {Subtask} unavailable", id);
                return null;
            }
        }));
        for (var i = 0; i < ids.Length; i++)
        {
            if (statuses[i] is { State: not SubtaskState.Created } status)
            {
                _subtasks[ids[i]] = status;
            }
        }
    }

    private void SetState(JobState state)
    {
        _state = state;
        _version++;
        if (state.IsTerminal())
        {
            _endedAt = time.GetUtcNow();
        }

        var changed = _changed;
        _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        changed.TrySetResult();
    }

    private JobStatus Snapshot() => new()
    {
        JobId = Id,
        JobType = _spec!.JobType,
        State = _state,
        Version = _version,
        Attempt = _attempt,
        SubmittedAt = _submittedAt,
        EndedAt = _endedAt,
        Failure = _failure,
        Subtasks = _subtasks.OrderBy(static p => p.Key.Chain).ThenBy(static p => p.Key.Index).Select(static p => p.Value).ToArray(),
    };

    private sealed class SplitEnumerator(SplitEnumerationContext context) : IStreamNodeVisitor<IReadOnlyList<SourceSplit>>
    {
        public IReadOnlyList<SourceSplit> VisitSource<T>(SourceNode<T> node) => node.Source.EnumerateSplits(context);

        public IReadOnlyList<SourceSplit> VisitMap<TIn, TOut>(MapNode<TIn, TOut> node) => [];

        public IReadOnlyList<SourceSplit> VisitFilter<T>(FilterNode<T> node) => [];

        public IReadOnlyList<SourceSplit> VisitFlatMap<TIn, TOut>(FlatMapNode<TIn, TOut> node) => [];

        public IReadOnlyList<SourceSplit> VisitKeyedProcess<TKey, TIn, TOut>(KeyedProcessNode<TKey, TIn, TOut> node)
            where TKey : notnull => [];

        public IReadOnlyList<SourceSplit> VisitSink<T>(SinkNode<T> node) => [];
    }
}
