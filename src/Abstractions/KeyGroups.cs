namespace StreamGrains;

/// <summary>
/// Key-group arithmetic: key hash → key group, key group → subtask, subtask → key-group range.
/// </summary>
/// <remarks>
/// The formulas are Flink's, so that state laid out by key group can be redistributed to any parallelism up to the
/// max parallelism by moving whole key groups: subtask <c>i</c> of <c>p</c> owns the contiguous range
/// <c>[ceil(i * max / p), floor(((i + 1) * max - 1) / p)]</c>, and key group <c>kg</c> belongs to subtask
/// <c>kg * p / max</c>. Every key group is owned by exactly one subtask for every <c>1 &lt;= p &lt;= max</c>.
/// </remarks>
public static class KeyGroups
{
    /// <summary>Default number of key groups of a job.</summary>
    public const int DefaultMaxParallelism = 128;

    /// <summary>Largest supported max parallelism (key groups are stored as 2 bytes).</summary>
    public const int UpperBound = 1 << 15;

    /// <summary>Maps a stable 32-bit key hash to its key group.</summary>
    public static int AssignToKeyGroup(uint keyHash, int maxParallelism)
    {
        CheckMaxParallelism(maxParallelism);
        return (int)(keyHash % (uint)maxParallelism);
    }

    /// <summary>The index of the subtask that owns <paramref name="keyGroup"/> at the given parallelism.</summary>
    public static int ComputeOperatorIndexForKeyGroup(int maxParallelism, int parallelism, int keyGroup)
    {
        CheckParallelism(maxParallelism, parallelism);
        if ((uint)keyGroup >= (uint)maxParallelism)
        {
            throw new ArgumentOutOfRangeException(nameof(keyGroup), $"Key group {keyGroup} is outside [0, {maxParallelism - 1}].");
        }

        return (int)((long)keyGroup * parallelism / maxParallelism);
    }

    /// <summary>The key-group range owned by subtask <paramref name="operatorIndex"/> at the given parallelism.</summary>
    public static KeyGroupRange ComputeKeyGroupRangeForOperatorIndex(int maxParallelism, int parallelism, int operatorIndex)
    {
        CheckParallelism(maxParallelism, parallelism);
        if ((uint)operatorIndex >= (uint)parallelism)
        {
            throw new ArgumentOutOfRangeException(nameof(operatorIndex), $"Subtask index {operatorIndex} is outside [0, {parallelism - 1}].");
        }

        var start = (int)(((long)operatorIndex * maxParallelism + parallelism - 1) / parallelism);
        var end = (int)((((long)operatorIndex + 1) * maxParallelism - 1) / parallelism);
        return new KeyGroupRange(start, end);
    }

    /// <summary>Throws unless <c>1 &lt;= maxParallelism &lt;= UpperBound</c>.</summary>
    public static void CheckMaxParallelism(int maxParallelism)
    {
        if (maxParallelism < 1 || maxParallelism > UpperBound)
        {
            throw new ArgumentOutOfRangeException(nameof(maxParallelism), $"Max parallelism must be between 1 and {UpperBound}, was {maxParallelism}.");
        }
    }

    /// <summary>Throws unless <c>1 &lt;= parallelism &lt;= maxParallelism &lt;= UpperBound</c>.</summary>
    public static void CheckParallelism(int maxParallelism, int parallelism)
    {
        CheckMaxParallelism(maxParallelism);
        if (parallelism < 1 || parallelism > maxParallelism)
        {
            throw new ArgumentOutOfRangeException(nameof(parallelism), $"Parallelism must be between 1 and the max parallelism {maxParallelism}, was {parallelism}.");
        }
    }
}
