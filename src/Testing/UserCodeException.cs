namespace StreamGrains.Testing;

/// <summary>User code under test threw; the original exception is the inner exception.</summary>
public sealed class UserCodeException(string operatorUid, Exception innerException)
    : Exception($"Operator '{operatorUid}' threw {innerException.GetType().Name}: {innerException.Message}", innerException)
{
    /// <summary>Uid of the operator whose code threw.</summary>
    public string OperatorUid { get; } = operatorUid;
}
