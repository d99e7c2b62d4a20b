using StreamGrains.Runtime;

namespace StreamGrains.Grains.Jobs;

/// <summary>
/// The subtasks of a job's current deployment as the job grain knows them: their last status, which of them finished,
/// when each last sent a heartbeat, and the calls that refresh or stop all of them at once.
/// </summary>
/// <remarks>
/// A started subtask sends a heartbeat every 2 seconds. One that sends none for <see cref="HeartbeatTimeout"/> is lost
/// even though its silo is active: its grain was deactivated, or re-created empty elsewhere after the silo holding its
/// directory entry was lost (the new activation has no deployment and sends nothing), so it reports neither failure nor
/// finish and the job would wait forever. <see cref="FindSilent"/> finds it for the job grain's watchdog.
/// </remarks>
internal sealed class SubtaskRoster(ISubtaskGateway subtasks)
{
    /// <summary>How long a started subtask may send no heartbeat before it counts as lost.</summary>
    public static readonly TimeSpan HeartbeatTimeout = TimeSpan.FromSeconds(15);

    private readonly Dictionary<SubtaskId, SubtaskStatus> _statuses = [];
    private readonly HashSet<SubtaskId> _finished = [];
    private readonly Dictionary<SubtaskId, DateTimeOffset> _heard = [];

    /// <summary>Number of subtasks that reported they processed all their input.</summary>
    public int FinishedCount => _finished.Count;

    /// <summary>Every known subtask and its status, chain by chain, index by index.</summary>
    public IEnumerable<KeyValuePair<SubtaskId, SubtaskStatus>> Ordered =>
        _statuses.OrderBy(static p => p.Key.Chain).ThenBy(static p => p.Key.Index);

    /// <summary>Forgets the previous deployment: a new attempt is being deployed.</summary>
    public void Clear()
    {
        _statuses.Clear();
        _finished.Clear();
        _heard.Clear();
    }

    /// <summary>Records the status of <paramref name="id"/>.</summary>
    public void Set(SubtaskId id, SubtaskStatus status) => _statuses[id] = status;

    /// <summary>The status of <paramref name="id"/>.</summary>
    public SubtaskStatus this[SubtaskId id] => _statuses[id];

    /// <summary>The status of <paramref name="id"/>, or null when it is not in the roster.</summary>
    public SubtaskStatus? TryGet(SubtaskId id) => _statuses.GetValueOrDefault(id);

    /// <summary>Changes the status of <paramref name="id"/> with <paramref name="update"/>; nothing happens when it is not in the roster.</summary>
    public void Update(SubtaskId id, Func<SubtaskStatus, SubtaskStatus> update)
    {
        ArgumentNullException.ThrowIfNull(update);
        if (_statuses.TryGetValue(id, out var status))
        {
            _statuses[id] = update(status);
        }
    }

    /// <summary>Records that the subtasks <paramref name="ids"/> were heard from at <paramref name="now"/> (started, so from now on they send heartbeats).</summary>
    public void Heard(IEnumerable<SubtaskId> ids, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(ids);
        foreach (var id in ids)
        {
            Heard(id, now);
        }
    }

    /// <summary>Records a heartbeat of <paramref name="id"/> at <paramref name="now"/>; false when it is not in the roster.</summary>
    public bool Heard(SubtaskId id, DateTimeOffset now)
    {
        if (!_statuses.ContainsKey(id))
        {
            return false;
        }

        _heard[id] = now;
        return true;
    }

    /// <summary>
    /// The failure of <paramref name="attempt"/> when one of its started subtasks sent no heartbeat for
    /// <paramref name="timeout"/> up to <paramref name="now"/>; null when every one was heard from in time.
    /// </summary>
    public JobFailure? FindSilent(int attempt, DateTimeOffset now, TimeSpan timeout)
    {
        foreach (var (id, heard) in _heard.OrderBy(static p => p.Key.Chain).ThenBy(static p => p.Key.Index))
        {
            if (id.Attempt == attempt && now - heard > timeout)
            {
                var silo = _statuses.GetValueOrDefault(id)?.Silo;
                return JobFailure.Of(JobFailureKind.Runtime, $"subtask {id} on silo {silo} sent no heartbeat for {now - heard:g} (its grain was lost or re-created without its deployment)", id.Index);
            }
        }

        return null;
    }

    /// <summary>Records that <paramref name="id"/> finished; false when it was already recorded.</summary>
    public bool MarkFinished(SubtaskId id) => _finished.Add(id);

    /// <summary>The subtasks of <paramref name="attempt"/>.</summary>
    public SubtaskId[] Of(int attempt) => _statuses.Keys.Where(id => id.Attempt == attempt).ToArray();

    /// <summary>
    /// Asks every subtask of <paramref name="attempt"/> for its status; those that do not answer, or answer from a grain
    /// that was not deployed, keep the last one (a subtask still opening answers, with its restore's progress).
    /// </summary>
    public async Task RefreshAsync(int attempt)
    {
        var ids = Of(attempt);
        var statuses = await Task.WhenAll(ids.Select(subtasks.GetStatusAsync));
        for (var i = 0; i < ids.Length; i++)
        {
            if (statuses[i] is { State: not SubtaskState.Created } or { OpenedAt: not null } && _statuses.ContainsKey(ids[i]))
            {
                _statuses[ids[i]] = statuses[i]!;
            }
        }
    }

    /// <summary>Collects the final counters of the subtasks of <paramref name="attempt"/>, then stops them.</summary>
    public async Task ReleaseAsync(int attempt, StopReason reason)
    {
        await RefreshAsync(attempt);
        await Task.WhenAll(Of(attempt).Select(id => subtasks.CancelAsync(id, reason)));
    }
}
