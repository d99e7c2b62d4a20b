namespace StreamGrains.State.Storage;

/// <summary>
/// A write-only, forward-only stream (so the SDK writes a download's ranges in order) that hashes and counts what passes
/// to <paramref name="inner"/>; the storage meter counts it as it arrives.
/// </summary>
internal sealed class HashingWriteStream(Stream inner, string metricsKind) : Stream
{
    private readonly System.IO.Hashing.XxHash64 _hash = new();
    private long _length;

    public override long Length => _length;

    public string Checksum => Checksums.ToHex(_hash.GetCurrentHashAsUInt64());

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Position
    {
        get => _length;
        set => throw new NotSupportedException();
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        _hash.Append(buffer);
        _length += buffer.Length;
        CheckpointStorageMetrics.Fetched(metricsKind, buffer.Length);
        inner.Write(buffer);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        _hash.Append(buffer.Span);
        _length += buffer.Length;
        CheckpointStorageMetrics.Fetched(metricsKind, buffer.Length);
        return inner.WriteAsync(buffer, cancellationToken);
    }

    public override void Flush() => inner.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
