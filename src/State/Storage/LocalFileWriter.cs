using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace StreamGrains.State.Storage;

/// <summary>
/// Writes a new local file front to back without leaving its bytes in the page cache: on Linux the file bypasses the
/// cache (O_DIRECT) and is written in aligned 1 MiB blocks from pinned buffers, the last block padded and the file then
/// truncated to its length. Where the OS or the filesystem cannot bypass the cache (tmpfs on older kernels, other
/// OSes), it is written through the cache, and on Linux each 8 MiB window is handed to the kernel for write-back as it
/// is written (sync_file_range), so at most two windows are dirty at a time.
/// </summary>
/// <remarks>
/// <para>Restores and filesystem uploads write gigabytes that nobody reads again soon (RocksDB reads a restored file's
/// blocks as it needs them). Through the page cache each of those pages costs a copy and a page allocation, and on a VM
/// that returns free memory to its host an allocation is a fault into the hypervisor: writing 2 GB took 4.0 s of CPU
/// through the cache and 0.2 s with O_DIRECT on the 2-core benchmark machine (2026-12-02), where a restore competes
/// with the storage service for those cores. And the dirty pages delay every fsync on the filesystem (ext4 commits the
/// journal after other files' data), which the small writes checkpoints wait for (segments, manifests) then pay.</para>
/// <para>Two buffers: one is filled while the other is written. Not thread-safe; writes are sequential.</para>
/// </remarks>
internal sealed partial class LocalFileWriter : Stream
{
    private const int BlockBytes = 1 << 20;
    private const int Alignment = 4096;
    private const long WriteBackWindow = 8 << 20;
    private const int MaxPooledBuffers = 32;
    private static readonly ConcurrentBag<byte[]> Pool = [];
    private readonly string _path;
    private readonly SafeFileHandle _handle;
    private readonly bool _direct;
    private readonly byte[][] _arrays = new byte[2][];
    private readonly int[] _starts = new int[2];
    private int _current;
    private int _filled;
    private long _length;
    private long _blocksWritten;
    private Task _writing = Task.CompletedTask;
    private (long Offset, long Length) _window;
    private bool _completed;
    private bool _disposed;

    private LocalFileWriter(string path, SafeFileHandle handle, bool direct)
    {
        _path = path;
        _handle = handle;
        _direct = direct;
        for (var i = 0; i < 2; i++)
        {
            _arrays[i] = Rent();
            _starts[i] = AlignedStart(_arrays[i]);
        }
    }

    /// <summary>Whether the file bypasses the page cache.</summary>
    public bool Direct => _direct;

    /// <inheritdoc />
    public override bool CanRead => false;

    /// <inheritdoc />
    public override bool CanSeek => false;

    /// <inheritdoc />
    public override bool CanWrite => !_completed && !_disposed;

    /// <inheritdoc />
    public override long Length => _length;

    /// <inheritdoc />
    public override long Position
    {
        get => _length;
        set => throw new NotSupportedException();
    }

    /// <summary>Creates <paramref name="path"/>, which must not exist.</summary>
    /// <param name="path">The new file.</param>
    /// <param name="bypassCache">Whether to bypass the page cache where possible (false: always through it; for tests).</param>
    /// <exception cref="IOException">When it exists or cannot be created.</exception>
    public static LocalFileWriter Create(string path, bool bypassCache = true)
    {
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, FileOptions.None);
        try
        {
            return new LocalFileWriter(path, handle, bypassCache && TryBypassCache(handle));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    /// <inheritdoc />
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            var taken = Append(buffer);
            buffer = buffer[taken..];
            if (_filled == BlockBytes)
            {
                StartBlockWrite(BlockBytes).GetAwaiter().GetResult();
            }
        }
    }

    /// <inheritdoc />
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc />
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        while (!buffer.IsEmpty)
        {
            var taken = Append(buffer.Span);
            buffer = buffer[taken..];
            if (_filled == BlockBytes)
            {
                await StartBlockWrite(BlockBytes);
            }
        }
    }

    /// <summary>Nothing: the file is complete only after <see cref="CompleteAsync"/>.</summary>
    public override void Flush()
    {
    }

    /// <summary>
    /// Writes what is buffered, gives the file its exact length and, with <paramref name="flushToDisk"/>, waits until it
    /// is on disk. No more writes after this.
    /// </summary>
    public async Task CompleteAsync(bool flushToDisk, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfCompleted();
        if (_filled > 0)
        {
            // O_DIRECT writes whole aligned blocks: the last one is padded, and the padding cut off below.
            var padded = _direct ? (_filled + Alignment - 1) / Alignment * Alignment : _filled;
            _arrays[_current].AsSpan(_starts[_current] + _filled, padded - _filled).Clear();
            await StartBlockWrite(padded);
        }

        await _writing;
        _completed = true;
        if (_direct)
        {
            RandomAccess.SetLength(_handle, _length);
        }

        if (flushToDisk)
        {
            RandomAccess.FlushToDisk(_handle);
        }
    }

    /// <inheritdoc />
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    /// <inheritdoc />
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc />
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <inheritdoc />
    public override async ValueTask DisposeAsync()
    {
        try
        {
            await _writing;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or OperationCanceledException)
        {
            // The caller saw it, or gave up on the file: it is incomplete either way.
        }
        finally
        {
            await base.DisposeAsync();
        }
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            if (!_writing.IsCompleted)
            {
                // A block is still being written from a buffer: the buffers are not returned while the kernel may read them.
                _writing.ContinueWith(
                    static (write, state) =>
                    {
                        _ = write.Exception; // observed: nobody waits for the file any more
                        ((LocalFileWriter)state!).Release();
                    },
                    this,
                    CancellationToken.None,
                    TaskContinuationOptions.ExecuteSynchronously,
                    TaskScheduler.Default);
            }
            else
            {
                Release();
            }
        }

        base.Dispose(disposing);
    }

    private void Release()
    {
        _handle.Dispose();
        for (var i = 0; i < 2; i++)
        {
            if (_arrays[i] is { } array && Pool.Count < MaxPooledBuffers)
            {
                Pool.Add(array);
            }

            _arrays[i] = null!;
        }
    }

    private void ThrowIfCompleted()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_completed)
        {
            throw new InvalidOperationException($"'{_path}' is complete: nothing more can be written to it.");
        }
    }

    private int Append(ReadOnlySpan<byte> source)
    {
        ThrowIfCompleted();
        var taken = Math.Min(source.Length, BlockBytes - _filled);
        source[..taken].CopyTo(_arrays[_current].AsSpan(_starts[_current] + _filled));
        _filled += taken;
        _length += taken;
        return taken;
    }

    /// <summary>Waits for the previous block's write, then starts writing the current buffer's first <paramref name="bytes"/> and switches buffers.</summary>
    private async Task StartBlockWrite(int bytes)
    {
        await _writing;
        var block = _arrays[_current].AsMemory(_starts[_current], bytes);
        var offset = _blocksWritten;
        _blocksWritten += BlockBytes;
        _current ^= 1;
        _filled = 0;
        _writing = WriteBlockAsync(block, offset);
    }

    /// <summary>Writes an accepted block; not cancellable (the caller's token may be one of a call that has returned).</summary>
    private async Task WriteBlockAsync(ReadOnlyMemory<byte> block, long offset)
    {
        await RandomAccess.WriteAsync(_handle, block, offset, CancellationToken.None);
        if (!_direct)
        {
            var written = offset + block.Length;
            var next = _window.Offset + _window.Length;
            if (written - next >= WriteBackWindow)
            {
                WriteBack(_handle, _window, (next, written - next), _path);
                _window = (next, written - next);
            }
        }
    }

    private static byte[] Rent()
    {
        // Pinned (never moved, so the alignment found once holds) and pooled: the pinned heap is collected only with gen 2.
        return Pool.TryTake(out var array) ? array : GC.AllocateUninitializedArray<byte>(BlockBytes + Alignment, pinned: true);
    }

    private static int AlignedStart(byte[] pinned)
    {
        var address = (long)Marshal.UnsafeAddrOfPinnedArrayElement(pinned, 0);
        return (int)((Alignment - (address % Alignment)) % Alignment);
    }

    /// <summary>Turns on O_DIRECT for <paramref name="handle"/>; false where the OS or filesystem cannot.</summary>
    private static bool TryBypassCache(SafeFileHandle handle)
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        var direct = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 or Architecture.X86 => 0x4000,
            Architecture.Arm64 or Architecture.Arm => 0x10000,
            _ => 0,
        };
        if (direct == 0)
        {
            return false;
        }

        const int getFlags = 3, setFlags = 4;
        try
        {
            var fd = (int)handle.DangerousGetHandle();
            var flags = FileControl(fd, getFlags, 0);
            return flags >= 0 && FileControl(fd, setFlags, flags | direct) == 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    /// <summary>
    /// Has the kernel write window <paramref name="current"/> to disk now, and waits until window <paramref name="previous"/>
    /// is on disk (Linux only; elsewhere nothing).
    /// </summary>
    /// <remarks>
    /// A write-back error is reported once, to the first caller that waits for it: it is thrown here, or the final fsync
    /// would not see it and a damaged copy would count as stored. Only "not supported" is ignored.
    /// </remarks>
    private static void WriteBack(SafeFileHandle file, (long Offset, long Length) previous, (long Offset, long Length) current, string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        try
        {
            const uint waitBefore = 1, write = 2, waitAfter = 4;
            if (previous.Length > 0)
            {
                Check(SyncFileRange(file, previous.Offset, previous.Length, waitBefore | write | waitAfter), path);
            }

            Check(SyncFileRange(file, current.Offset, current.Length, write), path);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            // A libc without sync_file_range: the final flush writes everything.
        }

        static void Check(int result, string path)
        {
            // This file or filesystem cannot do it: the final flush writes everything.
            const int invalid = 22, pipe = 29, notImplemented = 38, notSupported = 95;
            if (result != 0 && Marshal.GetLastPInvokeError() is var errno && errno is not (invalid or pipe or notImplemented or notSupported))
            {
                throw new IOException($"Writing '{path}' to disk failed (errno {errno}).");
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static partial int SyncFileRange(SafeFileHandle file, long offset, long length, uint flags);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int FileControl(int fd, int command, int argument);
}
