namespace StreamGrains.Client;

/// <summary>Why <see cref="StreamGrainsClient.ConnectAsync"/> could not connect.</summary>
public enum ClusterConnectionFailure
{
    /// <summary>The cause is not known.</summary>
    Unknown = 0,

    /// <summary>Nothing listens at any gateway endpoint (connection refused, or no answer to the TCP connect).</summary>
    NothingListening = 1,

    /// <summary>A gateway answered, but it belongs to another cluster (its cluster id differs from the client's).</summary>
    WrongClusterId = 2,

    /// <summary>Something accepted the TCP connection but the Orleans handshake failed: not an Orleans gateway, or TLS expected on one side.</summary>
    HandshakeFailed = 3,

    /// <summary>The gateways completed the handshake but the client did not finish connecting within the timeout.</summary>
    TimedOut = 4,
}

/// <summary>The client could not reach the cluster; <see cref="Reason"/> says why.</summary>
public sealed class ClusterConnectionException : Exception
{
    /// <summary>Creates the exception with an <see cref="ClusterConnectionFailure.Unknown"/> reason.</summary>
    public ClusterConnectionException(string message, Exception innerException)
        : this(message, innerException, ClusterConnectionFailure.Unknown)
    {
    }

    /// <summary>Creates the exception with its reason.</summary>
    public ClusterConnectionException(string message, Exception? innerException, ClusterConnectionFailure reason)
        : base(message, innerException) => Reason = reason;

    /// <summary>Why the connection failed.</summary>
    public ClusterConnectionFailure Reason { get; }
}
