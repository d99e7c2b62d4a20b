using System.Globalization;
using System.IO.Hashing;

namespace StreamGrains.State.Storage;

/// <summary>The checksum format of checkpoint storage: XxHash64 as 16 lowercase hex digits.</summary>
public static class Checksums
{
    /// <summary>Formats a hash.</summary>
    public static string ToHex(ulong hash) => hash.ToString("x16", CultureInfo.InvariantCulture);

    /// <summary>Throws <see cref="CheckpointStorageCorruptException"/> when a download's length or checksum differs from what was stored.</summary>
    public static void Verify(string path, StoredObject? expected, long length, string checksum)
    {
        if (expected is null)
        {
            return;
        }

        if (expected.Length != length)
        {
            throw new CheckpointStorageCorruptException(path, $"it has {length} bytes where {expected.Length} were stored");
        }

        if (expected.Checksum is { } stored && !string.Equals(stored, checksum, StringComparison.OrdinalIgnoreCase))
        {
            throw new CheckpointStorageCorruptException(path, $"its XxHash64 is {checksum} where {stored} was stored");
        }
    }

    /// <summary>The checksum of <paramref name="content"/>.</summary>
    public static string Of(ReadOnlySpan<byte> content) => ToHex(XxHash64.HashToUInt64(content));

    /// <summary>The length and checksum of a file's content.</summary>
    public static async Task<(long Length, string Checksum)> OfFileAsync(string path, CancellationToken cancellationToken)
    {
        var hash = new XxHash64();
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        await hash.AppendAsync(stream, cancellationToken);
        return (stream.Length, ToHex(hash.GetCurrentHashAsUInt64()));
    }
}
