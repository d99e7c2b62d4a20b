namespace StreamGrains.State.Tests.V1;

/// <summary>The first version of a state type.</summary>
[GenerateSerializer]
public sealed record Account
{
    [Id(0)] public string Name { get; init; } = string.Empty;
}
