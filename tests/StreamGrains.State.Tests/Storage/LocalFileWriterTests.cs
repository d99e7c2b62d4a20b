using System.Runtime.InteropServices;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Tests.Storage;

public sealed partial class LocalFileWriterTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    public static TheoryData<int, bool> Lengths()
    {
        var data = new TheoryData<int, bool>();
        foreach (var length in new[] { 0, 1, 4095, 4096, 4097, 1 << 20, (1 << 20) + 1, (7 << 20) / 2, 9 << 20 })
        {
            data.Add(length, true);
            data.Add(length, false);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public async Task A_file_written_in_chunks_of_any_size_has_exactly_the_bytes_written(int length, bool bypassCache)
    {
        var random = new Random(length);
        var content = new byte[length];
        random.NextBytes(content);
        var path = _directory.Sub("file");
        await using (var writer = LocalFileWriter.Create(path, bypassCache))
        {
            for (var offset = 0; offset < length;)
            {
                var chunk = Math.Min(length - offset, random.Next(1, 300_000));
                if (random.Next(4) == 0)
                {
                    writer.Write(content, offset, chunk);
                }
                else
                {
                    await writer.WriteAsync(content.AsMemory(offset, chunk));
                }

                offset += chunk;
            }

            await writer.CompleteAsync(flushToDisk: true, CancellationToken.None);
            Assert.Equal(length, writer.Length);
        }

        Assert.Equal(content, await File.ReadAllBytesAsync(path));
    }

    [Fact]
    public async Task On_linux_the_file_bypasses_the_page_cache_and_without_bypassing_its_pages_are_cached()
    {
        if (!OperatingSystem.IsLinux())
        {
            await using var elsewhere = LocalFileWriter.Create(_directory.Sub("elsewhere"));
            Assert.False(elsewhere.Direct);
            return;
        }

        var content = new byte[8 << 20];
        new Random(7).NextBytes(content);
        var direct = _directory.Sub("direct");
        var cached = _directory.Sub("cached");
        foreach (var (path, bypass) in new[] { (direct, true), (cached, false) })
        {
            await using var writer = LocalFileWriter.Create(path, bypass);
            Assert.Equal(bypass, writer.Direct);
            await writer.WriteAsync(content);
            await writer.CompleteAsync(flushToDisk: false, CancellationToken.None);
        }

        Assert.Equal(0, ResidentPages(direct));
        Assert.Equal(content.Length / Environment.SystemPageSize, ResidentPages(cached));
    }

    [Fact]
    public async Task Writing_after_completion_throws_and_an_existing_file_is_not_overwritten()
    {
        var path = _directory.Sub("once");
        await using (var writer = LocalFileWriter.Create(path))
        {
            await writer.WriteAsync(new byte[] { 1, 2, 3 });
            await writer.CompleteAsync(flushToDisk: false, CancellationToken.None);
            await Assert.ThrowsAsync<InvalidOperationException>(async () => await writer.WriteAsync(new byte[] { 4 }));
        }

        Assert.Throws<IOException>(() => LocalFileWriter.Create(path));
        Assert.Equal(new byte[] { 1, 2, 3 }, await File.ReadAllBytesAsync(path));
    }

    /// <summary>Pages of <paramref name="path"/> in the page cache (mincore on a mapping of it).</summary>
    private static int ResidentPages(string path)
    {
        using var file = File.OpenHandle(path);
        var length = RandomAccess.GetLength(file);
        const int read = 1, shared = 1;
        var mapping = Map(IntPtr.Zero, (nuint)length, read, shared, (int)file.DangerousGetHandle(), 0);
        Assert.NotEqual(new IntPtr(-1), mapping);
        try
        {
            var pages = new byte[(length + Environment.SystemPageSize - 1) / Environment.SystemPageSize];
            Assert.Equal(0, ResidencyOf(mapping, (nuint)length, pages));
            return pages.Count(static p => (p & 1) != 0);
        }
        finally
        {
            _ = Unmap(mapping, (nuint)length);
        }
    }

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial IntPtr Map(IntPtr address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Unmap(IntPtr address, nuint length);

    [LibraryImport("libc", EntryPoint = "mincore", SetLastError = true)]
    private static partial int ResidencyOf(IntPtr address, nuint length, [Out] byte[] pages);
}
