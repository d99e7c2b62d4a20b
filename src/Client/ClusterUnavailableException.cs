namespace StreamGrains.Client;

/// <summary>
/// The cluster did not answer a call for longer than <see cref="StreamGrainsClient.TransientRetryTime"/>: silos were
/// unreachable (one failed and the cluster had not yet noticed, a grain was being re-created elsewhere) or calls timed
/// out. The call may be tried again later; the inner exception is the last error seen.
/// </summary>
public sealed class ClusterUnavailableException(string message, Exception innerException) : Exception(message, innerException);
