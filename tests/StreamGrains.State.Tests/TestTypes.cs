namespace StreamGrains.State.Tests;

/// <summary>A state value type serialized by Orleans' codec.</summary>
[GenerateSerializer]
public sealed record Point
{
    [Id(0)] public int X { get; init; }

    [Id(1)] public string Label { get; init; } = string.Empty;
}

/// <summary>A composite key type without a built-in key serializer (Orleans' codec is the fallback).</summary>
[GenerateSerializer]
public sealed record OrderKey
{
    [Id(0)] public string Customer { get; init; } = string.Empty;

    [Id(1)] public int Number { get; init; }
}
