using System.Diagnostics;

namespace StreamGrains;

/// <summary>
/// A contiguous, inclusive range of key groups <c>[Start, End]</c> owned by one subtask.
/// </summary>
/// <remarks>
/// Immutable value type. <see cref="Empty"/> is the only range with <see cref="Count"/> 0; every other range has
/// <c>0 &lt;= Start &lt;= End</c>.
/// </remarks>
[GenerateSerializer, Immutable]
public readonly record struct KeyGroupRange
{
    /// <summary>The range that contains no key group.</summary>
    public static readonly KeyGroupRange Empty = new(0, -1, isEmpty: true);

    /// <summary>Creates the inclusive range <c>[start, end]</c>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">When <paramref name="start"/> is negative or greater than <paramref name="end"/>.</exception>
    public KeyGroupRange(int start, int end)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        if (end < start)
        {
            throw new ArgumentOutOfRangeException(nameof(end), $"Key-group range end {end} is before its start {start}; use KeyGroupRange.Empty for an empty range.");
        }

        Start = start;
        End = end;
    }

    private KeyGroupRange(int start, int end, bool isEmpty)
    {
        Debug.Assert(isEmpty && end < start);
        Start = start;
        End = end;
    }

    /// <summary>First key group of the range (inclusive).</summary>
    [Id(0)] public int Start { get; }

    /// <summary>Last key group of the range (inclusive).</summary>
    [Id(1)] public int End { get; }

    /// <summary>Number of key groups in the range.</summary>
    public int Count => IsEmpty ? 0 : End - Start + 1;

    /// <summary>Whether the range contains no key group.</summary>
    public bool IsEmpty => End < Start;

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
