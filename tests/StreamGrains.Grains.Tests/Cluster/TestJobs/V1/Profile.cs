namespace StreamGrains.Grains.Tests.V1;

/// <summary>The first version of a state type.</summary>
[GenerateSerializer]
public sealed record Profile
{
    [Id(0)] public string Name { get; init; } = string.Empty;

    [Id(1)] public long Count { get; init; }
}
