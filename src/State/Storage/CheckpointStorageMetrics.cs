using System.Diagnostics.Metrics;

namespace StreamGrains.State.Storage;

/// <summary>
/// Bytes moved to and from checkpoint storage by this process, as <see cref="System.Diagnostics.Metrics"/> counters
/// (meter <see cref="MeterName"/>), for OpenTelemetry or any <see cref="MeterListener"/>. Tagged with the storage kind
/// (<c>filesystem</c> or <c>blob</c>).
/// </summary>
public static class CheckpointStorageMetrics
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "StreamGrains.CheckpointStorage";

    /// <summary>Counter of bytes written to storage (uploads and small objects).</summary>
    public const string BytesWrittenName = "streamgrains.checkpoint_storage.bytes_written";

    /// <summary>Counter of bytes read from storage (downloads, links verified, small objects).</summary>
    public const string BytesReadName = "streamgrains.checkpoint_storage.bytes_read";

    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> Written = Meter.CreateCounter<long>(BytesWrittenName, "By", "Bytes written to checkpoint storage");
    private static readonly Counter<long> Read = Meter.CreateCounter<long>(BytesReadName, "By", "Bytes read from checkpoint storage");

    internal static void Wrote(string kind, long bytes) => Written.Add(bytes, new KeyValuePair<string, object?>("storage", kind));

    internal static void Fetched(string kind, long bytes) => Read.Add(bytes, new KeyValuePair<string, object?>("storage", kind));
}
