namespace StreamGrains.Grains.Operators;

/// <summary>An exception thrown by user code, with the operator it came from.</summary>
internal sealed class OperatorException(string operatorUid, Exception innerException)
    : Exception($"Operator '{operatorUid}' threw {innerException.GetType().Name}: {innerException.Message}", innerException)
{
    public string OperatorUid { get; } = operatorUid;
}
