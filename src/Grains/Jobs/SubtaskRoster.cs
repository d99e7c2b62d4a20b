using StreamGrains.Runtime;

namespace StreamGrains.Grains.Jobs;

/// <summary>
/// The subtasks of a job's current deployment as the job grain knows them: their last status, which of them finished,
/// when each last sent a heartbeat, and the calls that refresh or stop all of them at once.
/// </summary>
/// <remarks>
/// A started subtask sends a heartbeat every 2 seconds. One that sends none for <see cref="HeartbeatTimeout"/> is lost
/// if its grain was deactivated, or re-created empty elsewhere after the silo holding its directory entry was lost (the
/// new activation has no deployment and sends nothing): it reports neither failure nor finish, its silo stays active,
/// and the job would wait forever. <see cref="FindLostAsync"/> finds it for the job grain's watchdog.
/// </remarks>
internal sealed class SubtaskRoster(ISubtaskGateway subtasks)
{
    /// <summary>How long a started subtask may send no heartbeat before it counts as lost.</summary>
    public static readonly TimeSpan HeartbeatTimeout = TimeSpan.FromSeconds(15);

    private readonly Dictionary<SubtaskId, SubtaskStatus> _statuses = [];
    private readonly HashSet<SubtaskId> _finished = [];
    private readonly Dictionary<SubtaskId, DateTimeOffset> _heard = [];
    private bool _probing;

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
    /// <paramref name="timeout"/> up to <paramref name="now"/> and is lost: asked for its deploy state, it answers that
    /// it holds no deployment, or it answers nothing for four times the timeout. A silent subtask that answers as
    /// deployed counts as heard; one that does not answer yet is left to the <see cref="SiloWatchdog"/> (its silo may
    /// be dead and not yet declared so). Null when no subtask is lost; one check at a time.
    /// </summary>
    public async Task<JobFailure?> FindLostAsync(int attempt, DateTimeOffset now, TimeSpan timeout)
    {
        var silent = _heard.Where(p => p.Key.Attempt == attempt && now - p.Value > timeout).OrderBy(static p => p.Key.Chain).ThenBy(static p => p.Key.Index).ToArray();
        if (silent.Length == 0 || _probing)
        {
            return null;
        }

        _probing = true;
        try
        {
            var states = await Task.WhenAll(silent.Select(p => subtasks.GetDeployStateAsync(p.Key)));
            for (var i = 0; i < silent.Length; i++)
            {
                var (id, heard) = silent[i];
                if (!_heard.ContainsKey(id))
                {
                    continue;
                }

                var silo = _statuses.GetValueOrDefault(id)?.Silo;
                switch (states[i])
                {
                    case { Phase: SubtaskDeployPhase.None } lost:
                        return JobFailure.Of(JobFailureKind.Runtime, $"subtask {id} sent no heartbeat for {now - heard:g} and its grain on silo {lost.Silo} holds no deployment (it was lost or re-created without it)", id.Index);
                    case null when now - heard > 4 * timeout:
                        return JobFailure.Of(JobFailureKind.Runtime, $"subtask {id} on silo {silo} sent no heartbeat and answered nothing for {now - heard:g}", id.Index);
                    case { }:
                        _heard[id] = now;
                        break;
                }
            }

            return null;
        }
        finally
        {
            _probing = false;
        }
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
