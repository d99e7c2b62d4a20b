using StreamGrains.Runtime;

namespace StreamGrains.Grains.Jobs;

/// <summary>
/// The deploy outcomes of the subtasks of one attempt as they come in, whichever way first: a subtask's one-way report
/// (<see cref="IJobGrain.OnSubtaskReady"/>) or the answer to a poll of its deploy state. The first outcome of a subtask
/// counts; later ones and those of other subtasks are ignored.
/// </summary>
/// <remarks>Thread-safe: reports arrive on the job grain's turns, and in unit tests on any thread.</remarks>
internal sealed class DeployReadiness
{
    private readonly object _lock = new();
    private readonly SubtaskId[] _expected;
    private readonly Dictionary<SubtaskId, DeployResult> _results = [];
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private SubtaskId? _firstFailed;

    /// <summary>Expects an outcome from each of <paramref name="expected"/>.</summary>
    public DeployReadiness(IReadOnlyCollection<SubtaskId> expected)
    {
        ArgumentNullException.ThrowIfNull(expected);
        _expected = [.. expected];
    }

    /// <summary>Completes at the next outcome that counts (take it anew after each one).</summary>
    public Task Changed
    {
        get
        {
            lock (_lock)
            {
                return _changed.Task;
            }
        }
    }

    /// <summary>The expected subtasks without an outcome yet.</summary>
    public SubtaskId[] Pending
    {
        get
        {
            lock (_lock)
            {
                return _expected.Where(id => !_results.ContainsKey(id)).ToArray();
            }
        }
    }

    /// <summary>The first subtask whose outcome is a failure, with that outcome; null while none failed.</summary>
    public (SubtaskId Subtask, DeployResult Result)? FirstFailure
    {
        get
        {
            lock (_lock)
            {
                return _firstFailed is { } id ? (id, _results[id]) : null;
            }
        }
    }

    /// <summary>Whether every expected subtask has an outcome, or one of them failed (the attempt cannot start either way).</summary>
    public bool IsDecided
    {
        get
        {
            lock (_lock)
            {
                return _firstFailed is not null || _results.Count == _expected.Length;
            }
        }
    }

    /// <summary>The outcome of <paramref name="subtask"/>, or null while it has none.</summary>
    public DeployResult? ResultOf(SubtaskId subtask)
    {
        lock (_lock)
        {
            return _results.GetValueOrDefault(subtask);
        }
    }

    /// <summary>Records the outcome of <paramref name="subtask"/>; false when it is not expected or already has one.</summary>
    public bool Report(SubtaskId subtask, DeployResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        TaskCompletionSource changed;
        lock (_lock)
        {
            if (!_expected.Contains(subtask) || !_results.TryAdd(subtask, result))
            {
                return false;
            }

            if (result.Failure is not null && _firstFailed is null)
            {
                _firstFailed = subtask;
            }

            changed = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.TrySetResult();
        return true;
    }
}
