namespace StreamGrains;

/// <summary>
/// A contiguous, inclusive range of key groups <c>[Start, End]</c> owned by one subtask.
/// </summary>
/// <remarks>
/// Immutable value type. <see cref="Empty"/> (also <c>default</c>) is the range with <see cref="Count"/> 0; every other
/// range has <c>0 &lt;= Start &lt;= End</c>. Stored as start and exclusive end, so that <c>default</c> owns nothing.
/// </remarks>
// The constructor takes the inclusive end; the serialized fields are Start and EndExclusive only.
[GenerateSerializer(IncludePrimaryConstructorParameters = false), Immutable]
public readonly record struct KeyGroupRange
{
    /// <summary>The range that contains no key group.</summary>
    public static readonly KeyGroupRange Empty;

    /// <summary>Creates the inclusive range <c>[start, end]</c>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">When <paramref name="start"/> is negative or greater than <paramref name="end"/>.</exception>
    public KeyGroupRange(int start, int end)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        if (end < start)
        {
            throw new ArgumentOutOfRangeException(nameof(end), $"Key-group range end {end} is before its start {start}; use KeyGroupRange.Empty for an empty range.");
        }

        if (end == int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(end), "Key-group range end must be below int.MaxValue.");
        }

        Start = start;
        EndExclusive = end + 1;
    }

    /// <summary>First key group of the range (inclusive).</summary>
    [Id(0)] public int Start { get; }

    /// <summary>One past the last key group of the range.</summary>
    [Id(1)] public int EndExclusive { get; }

    /// <summary>Last key group of the range (inclusive); <c>Start - 1</c> when empty.</summary>
    public int End => EndExclusive - 1;

    /// <summary>Number of key groups in the range.</summary>
    public int Count => EndExclusive - Start;

    /// <summary>Whether the range contains no key group.</summary>
    public bool IsEmpty => EndExclusive <= Start;

    /// <summary>Whether <paramref name="keyGroup"/> lies in the range.</summary>
    public bool Contains(int keyGroup) => keyGroup >= Start && keyGroup <= End;

    /// <summary>The key groups both ranges contain; <see cref="Empty"/> when they do not overlap.</summary>
    public KeyGroupRange Intersect(KeyGroupRange other)
    {
        if (IsEmpty || other.IsEmpty)
        {
            return Empty;
        }

        var start = Math.Max(Start, other.Start);
        var end = Math.Min(End, other.End);
        return start <= end ? new KeyGroupRange(start, end) : Empty;
    }

    /// <summary>Enumerates the key groups of the range in ascending order.</summary>
    public IEnumerable<int> KeyGroups()
    {
        for (var kg = Start; kg <= End; kg++)
        {
            yield return kg;
        }
    }

    /// <inheritdoc />
    public override string ToString() => IsEmpty ? "[]" : $"[{Start}, {End}]";
}
