namespace StreamGrains.State.Tests.V2;

/// <summary>The second version of the same state type (<see cref="V1.Account"/>) with one field added.</summary>
[GenerateSerializer]
public sealed record Account
{
    [Id(0)] public string Name { get; init; } = string.Empty;

    [Id(1)] public int Level { get; init; }
}
