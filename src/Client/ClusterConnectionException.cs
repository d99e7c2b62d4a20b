namespace StreamGrains.Client;

/// <summary>The client could not reach the cluster.</summary>
public sealed class ClusterConnectionException(string message, Exception innerException) : Exception(message, innerException);
