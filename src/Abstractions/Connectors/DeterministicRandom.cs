namespace StreamGrains.Connectors;

/// <summary>
/// Stateless, seeded pseudo-random values: the value for (seed, index) is always the same, in every process.
/// </summary>
/// <remarks>
/// Generators use it to produce event <c>i</c> without producing events <c>0..i-1</c>, which makes them replayable
/// from any position and lets a test compute the expected result independently.
/// </remarks>
public static class DeterministicRandom
{
    /// <summary>64 well-mixed bits for (<paramref name="seed"/>, <paramref name="index"/>) (SplitMix64 finalizer).</summary>
    public static ulong Next(long seed, long index)
    {
        var z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)index * 0xBF58476D1CE4E5B9UL + 0x94D049BB133111EBUL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return z ^ (z >> 31);
    }

    /// <summary>A value in <c>[0, maxExclusive)</c> for (<paramref name="seed"/>, <paramref name="index"/>).</summary>
    public static long NextInt64(long seed, long index, long maxExclusive)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxExclusive, 1);
        return (long)(Next(seed, index) % (ulong)maxExclusive);
    }

    /// <summary>A value in <c>[0, 1)</c> for (<paramref name="seed"/>, <paramref name="index"/>).</summary>
    public static double NextDouble(long seed, long index) => (Next(seed, index) >> 11) * (1.0 / (1UL << 53));
}
