using System.Buffers;
using System.IO.Hashing;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;

namespace StreamGrains.State.Tests;

/// <summary>Things every state test needs: Orleans' serializer, temp directories, an independent key-group model.</summary>
internal static class TestEnvironment
{
    private static readonly Lazy<Serializer> LazySerializer = new(static () =>
        new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>());

    /// <summary>Orleans' serializer with the test assembly's generated codecs.</summary>
    public static Serializer Serializer => LazySerializer.Value;

    /// <summary>The key group of a string key, computed from the documented rule (XxHash32 of its UTF-8 bytes modulo max parallelism).</summary>
    public static int KeyGroupOfString(string key, int maxParallelism) =>
        (int)(XxHash32.HashToUInt32(Encoding.UTF8.GetBytes(key)) % (uint)maxParallelism);

    /// <summary>The key group of a key whose serialized bytes are <paramref name="keyBytes"/>.</summary>
    public static int KeyGroupOfBytes(ReadOnlySpan<byte> keyBytes, int maxParallelism) =>
        (int)(XxHash32.HashToUInt32(keyBytes) % (uint)maxParallelism);

    /// <summary>Serializes <paramref name="key"/> to a new array.</summary>
    public static byte[] ToBytes<T>(IKeySerializer<T> serializer, T key)
    {
        var buffer = new ArrayBufferWriter<byte>();
        serializer.Serialize(key, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Reads an unsigned LEB128 integer (written independently of the production reader).</summary>
    public static int ReadVarInt(ReadOnlySpan<byte> bytes, out int length)
    {
        var value = 0;
        for (var i = 0; ; i++)
        {
            value |= (bytes[i] & 0x7F) << (7 * i);
            if (bytes[i] < 0x80)
            {
                length = i + 1;
                return value;
            }
        }
    }
}

/// <summary>Unsigned lexicographic byte order, as RocksDB's default comparator orders keys.</summary>
internal sealed class ByteOrder : IComparer<byte[]>
{
    public static readonly ByteOrder Instance = new();

    public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
}

/// <summary>A directory under the temp path that is deleted on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "streamgrains-state-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        if (Directory.Exists(Path))
        {
            Directory.Delete(Path, recursive: true);
        }
    }
}

/// <summary>Records every restore progress report, from any thread, in the order they arrived.</summary>
internal sealed class RecordingProgress : IProgress<StreamGrains.RestoreProgress>
{
    private readonly Lock _lock = new();
    private readonly List<StreamGrains.RestoreProgress> _reports = [];

    public IReadOnlyList<StreamGrains.RestoreProgress> Reports
    {
        get
        {
            lock (_lock)
            {
                return [.. _reports];
            }
        }
    }

    public void Report(StreamGrains.RestoreProgress value)
    {
        lock (_lock)
        {
            _reports.Add(value);
        }
    }
}

/// <summary>Checkpoint settings for the tests that open an operator's keyed state: no eager uploads, and in changelog mode no materialization or segment sealing by time during a test.</summary>
internal static class TestCheckpointSettings
{
    public static readonly CheckpointSettings Incremental = new() { Interval = TimeSpan.FromMinutes(1), EagerUploadInterval = null };

    public static readonly CheckpointSettings Changelog = Incremental with
    {
        Mode = CheckpointMode.Changelog,
        MaterializationInterval = TimeSpan.FromHours(1),
        ChangelogSegmentBytes = 64 << 10,
        ChangelogSegmentInterval = TimeSpan.FromMinutes(10),
    };
}
