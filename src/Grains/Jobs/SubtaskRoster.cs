using StreamGrains.Runtime;

namespace StreamGrains.Grains.Jobs;

/// <summary>
/// The subtasks of a job's current deployment as the job grain knows them: their last status, which of them finished,
/// and the calls that refresh or stop all of them at once.
/// </summary>
internal sealed class SubtaskRoster(ISubtaskGateway subtasks)
{
    private readonly Dictionary<SubtaskId, SubtaskStatus> _statuses = [];
    private readonly HashSet<SubtaskId> _finished = [];

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
    }

    /// <summary>Records the status of <paramref name="id"/>.</summary>
    public void Set(SubtaskId id, SubtaskStatus status) => _statuses[id] = status;

    /// <summary>The status of <paramref name="id"/>.</summary>
    public SubtaskStatus this[SubtaskId id] => _statuses[id];

    /// <summary>Records that <paramref name="id"/> finished; false when it was already recorded.</summary>
    public bool MarkFinished(SubtaskId id) => _finished.Add(id);

    /// <summary>The subtasks of <paramref name="attempt"/>.</summary>
    public SubtaskId[] Of(int attempt) => _statuses.Keys.Where(id => id.Attempt == attempt).ToArray();

    /// <summary>Asks every subtask of <paramref name="attempt"/> for its status; those that do not answer keep the last one.</summary>
    public async Task RefreshAsync(int attempt)
    {
        var ids = Of(attempt);
        var statuses = await Task.WhenAll(ids.Select(subtasks.GetStatusAsync));
        for (var i = 0; i < ids.Length; i++)
        {
            if (statuses[i] is { State: not SubtaskState.Created } status && _statuses.ContainsKey(ids[i]))
            {
                _statuses[ids[i]] = status;
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
