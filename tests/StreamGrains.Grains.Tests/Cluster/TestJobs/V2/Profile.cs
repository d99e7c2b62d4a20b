namespace StreamGrains.Grains.Tests.V2;

/// <summary>The second version of <see cref="V1.Profile"/>: one field added, with a default that is not the type's zero.</summary>
[GenerateSerializer]
public sealed record Profile
{
    [Id(0)] public string Name { get; init; } = string.Empty;

    [Id(1)] public long Count { get; init; }

    [Id(2)] public int Level { get; init; } = 7;
}
