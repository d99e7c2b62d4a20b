using System.IO.Hashing;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Tests.Storage;

/// <summary>The contract of <see cref="ICheckpointStorage"/>, run against every implementation.</summary>
public abstract partial class CheckpointStorageContractTests : IDisposable
{
    private const int MiB = 1 << 20;
    private readonly TempDirectory _local = new();

    /// <summary>The storage under test, empty at the start of each test.</summary>
    protected abstract ICheckpointStorage Storage { get; }

    /// <summary>Changes bytes of a stored object behind the storage's back, keeping its length and recorded checksum.</summary>
    protected abstract Task CorruptAsync(string path);

    public virtual void Dispose()
    {
        _local.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>A path in a local scratch directory (not in the storage).</summary>
    protected string LocalPath(string name) => _local.Sub(name);

    protected static byte[] RandomBytes(int seed, int length)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    protected static string XxHash64Hex(ReadOnlySpan<byte> content) => XxHash64.HashToUInt64(content).ToString("x16", System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task Write_then_read_returns_the_same_bytes()
    {
        var content = RandomBytes(seed: 1, 10_000);

        await Storage.WriteAsync("job/chk-1/_manifest.json", content, overwrite: false, CancellationToken.None);

        Assert.Equal(content, await Storage.ReadAsync("job/chk-1/_manifest.json", CancellationToken.None));
        Assert.True(await Storage.ExistsAsync("job/chk-1/_manifest.json", CancellationToken.None));
    }

    [Fact]
    public async Task Bytes_written_and_read_are_counted_by_the_storage_meter()
    {
        long written = 0;
        long read = 0;
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = static (instrument, l) =>
        {
            if (instrument.Meter.Name == CheckpointStorageMetrics.MeterName)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            // Other tests run at the same time and add to the same counters: the assertions below are lower bounds.
            _ = instrument.Name == CheckpointStorageMetrics.BytesWrittenName ? Interlocked.Add(ref written, value) : Interlocked.Add(ref read, value);
        });
        listener.Start();
        var small = RandomBytes(seed: 31, 70_001);
        var file = RandomBytes(seed: 32, 300_003);
        var source = LocalPath("metered.sst");
        await File.WriteAllBytesAsync(source, file);

        await Storage.WriteAsync("metered/small", small, overwrite: false, CancellationToken.None);
        var stored = await Storage.UploadFileAsync(source, "metered/file.sst", CancellationToken.None);
        var wroteAtLeast = Interlocked.Read(ref written);
        await Storage.ReadAsync("metered/small", CancellationToken.None);
        await Storage.DownloadFileAsync("metered/file.sst", LocalPath("metered-copy.sst"), stored, CancellationToken.None);

        Assert.True(wroteAtLeast >= small.Length + file.Length, $"counted {wroteAtLeast} bytes written, expected at least {small.Length + file.Length}");
        Assert.True(Interlocked.Read(ref read) >= small.Length + file.Length, $"counted {Interlocked.Read(ref read)} bytes read, expected at least {small.Length + file.Length}");
    }

    [Fact]
    public async Task Write_with_overwrite_replaces_the_content()
    {
        await Storage.WriteAsync("a/b", RandomBytes(seed: 2, 5_000), overwrite: false, CancellationToken.None);
        var second = RandomBytes(seed: 3, 300);

        await Storage.WriteAsync("a/b", second, overwrite: true, CancellationToken.None);

        Assert.Equal(second, await Storage.ReadAsync("a/b", CancellationToken.None));
    }

    [Fact]
    public async Task Write_without_overwrite_on_an_existing_path_throws_and_keeps_the_old_content()
    {
        var first = RandomBytes(seed: 4, 1_000);
        await Storage.WriteAsync("job/chk-7/_manifest.json", first, overwrite: false, CancellationToken.None);

        var error = await Assert.ThrowsAsync<CheckpointStorageException>(() =>
            Storage.WriteAsync("job/chk-7/_manifest.json", RandomBytes(seed: 5, 2_000), overwrite: false, CancellationToken.None));

        Assert.Contains("job/chk-7/_manifest.json", error.Message, StringComparison.Ordinal);
        Assert.Contains("exists", error.Message, StringComparison.Ordinal);
        Assert.Equal(first, await Storage.ReadAsync("job/chk-7/_manifest.json", CancellationToken.None));
    }

    [Fact]
    public async Task Of_concurrent_writes_without_overwrite_exactly_one_succeeds_and_its_content_is_stored()
    {
        const int Rounds = 10;
        const int Writers = 8;
        for (var round = 0; round < Rounds; round++)
        {
            var path = $"race/chk-{round}/_manifest.json";
            var contents = Enumerable.Range(0, Writers).Select(i => RandomBytes(seed: (100 * round) + i, 4_096)).ToArray();
            var attempts = contents.Select(content => Task.Run(async () =>
            {
                try
                {
                    await Storage.WriteAsync(path, content, overwrite: false, CancellationToken.None);
                    return content;
                }
                catch (CheckpointStorageException)
                {
                    return null;
                }
            })).ToArray();

            var winners = (await Task.WhenAll(attempts)).OfType<byte[]>().ToList();

            Assert.True(winners.Count == 1, $"round {round}: {winners.Count} of {Writers} writers created {path}");
            Assert.Equal(winners[0], await Storage.ReadAsync(path, CancellationToken.None));
        }
    }

    [Fact]
    public async Task Readers_during_many_overwrites_of_a_1_MiB_object_always_see_one_written_version_in_full()
    {
        const int Overwrites = 40;
        var versions = Enumerable.Range(0, 4).Select(static i => RandomBytes(seed: 200 + i, MiB)).ToArray();
        var known = versions.Select(static v => XxHash64Hex(v)).ToHashSet();
        await Storage.WriteAsync("hot/_manifest.json", versions[0], overwrite: true, CancellationToken.None);
        using var writing = new CancellationTokenSource();

        async Task<(int Reads, List<string> Bad)> ReadUntilDoneAsync()
        {
            var reads = 0;
            List<string> bad = [];
            while (!writing.IsCancellationRequested || reads == 0)
            {
                var read = await Storage.ReadAsync("hot/_manifest.json", CancellationToken.None);
                reads++;
                if (read is null)
                {
                    bad.Add("null");
                }
                else if (read.Length != MiB || !known.Contains(XxHash64Hex(read)))
                {
                    bad.Add($"{read.Length} bytes, XxHash64 {XxHash64Hex(read)}");
                }
            }

            return (reads, bad);
        }

        var readers = Enumerable.Range(0, 3).Select(_ => Task.Run(ReadUntilDoneAsync)).ToArray();
        for (var i = 1; i <= Overwrites; i++)
        {
            await Storage.WriteAsync("hot/_manifest.json", versions[i % versions.Length], overwrite: true, CancellationToken.None);
        }

        await writing.CancelAsync();
        var results = await Task.WhenAll(readers);

        Assert.All(results, static r => Assert.True(r.Reads > 0));
        Assert.Empty(results.SelectMany(static r => r.Bad));
        Assert.Equal(versions[Overwrites % versions.Length], await Storage.ReadAsync("hot/_manifest.json", CancellationToken.None));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(17 * MiB)]
    public async Task Upload_then_download_round_trips_and_returns_the_XxHash64_of_the_content(int length)
    {
        var content = RandomBytes(seed: length, length);
        var source = LocalPath("source.sst");
        await File.WriteAllBytesAsync(source, content);

        var stored = await Storage.UploadFileAsync(source, "job/shared/000042.sst", CancellationToken.None);
        var target = LocalPath("restored/000042.sst");
        await Storage.DownloadFileAsync("job/shared/000042.sst", target, stored, CancellationToken.None);

        Assert.Equal(new StoredObject("job/shared/000042.sst", length, XxHash64Hex(content)), stored);
        Assert.Equal(content, await File.ReadAllBytesAsync(target));
        var listed = Assert.Single(await ListAsync("job/shared"));
        Assert.Equal(length, listed.Length);
        Assert.True(listed.Checksum is null || listed.Checksum == stored.Checksum, $"listed checksum {listed.Checksum}, stored {stored.Checksum}");
    }

    [Fact]
    public async Task Upload_replaces_an_existing_object_and_download_replaces_an_existing_local_file()
    {
        var first = LocalPath("first");
        var second = LocalPath("second");
        await File.WriteAllBytesAsync(first, RandomBytes(seed: 6, 3_000));
        var secondContent = RandomBytes(seed: 7, 2_000);
        await File.WriteAllBytesAsync(second, secondContent);
        await Storage.UploadFileAsync(first, "x/file", CancellationToken.None);

        var stored = await Storage.UploadFileAsync(second, "x/file", CancellationToken.None);
        await Storage.DownloadFileAsync("x/file", first, stored, CancellationToken.None);

        Assert.Equal(secondContent, await File.ReadAllBytesAsync(first));
    }

    [Theory]
    [InlineData("checksum")]
    [InlineData("length")]
    public async Task Download_with_a_wrong_expectation_throws_corrupt_and_leaves_no_file(string wrong)
    {
        var content = RandomBytes(seed: 8, 100_000);
        var source = LocalPath("source");
        await File.WriteAllBytesAsync(source, content);
        var stored = await Storage.UploadFileAsync(source, "job/shared/a.sst", CancellationToken.None);
        var expected = wrong == "checksum" ? stored with { Checksum = XxHash64Hex("other"u8) } : stored with { Length = stored.Length + 1 };
        var targetDirectory = LocalPath("restore");
        Directory.CreateDirectory(targetDirectory);

        var error = await Assert.ThrowsAsync<CheckpointStorageCorruptException>(() =>
            Storage.DownloadFileAsync("job/shared/a.sst", Path.Combine(targetDirectory, "a.sst"), expected, CancellationToken.None));

        Assert.Equal("job/shared/a.sst", error.Path);
        Assert.Contains(wrong == "checksum" ? expected.Checksum! : expected.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), error.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(targetDirectory));
    }

    [Fact]
    public async Task Download_of_an_object_corrupted_behind_the_storage_throws_corrupt()
    {
        var content = RandomBytes(seed: 9, 3 * MiB);
        var source = LocalPath("source");
        await File.WriteAllBytesAsync(source, content);
        var stored = await Storage.UploadFileAsync(source, "job/shared/b.sst", CancellationToken.None);

        await CorruptAsync("job/shared/b.sst");

        var target = LocalPath("b.sst");
        var error = await Assert.ThrowsAsync<CheckpointStorageCorruptException>(() => Storage.DownloadFileAsync("job/shared/b.sst", target, stored, CancellationToken.None));
        Assert.Contains(stored.Checksum!, error.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(target));
    }

    [Fact]
    public async Task A_missing_object_reads_as_null_does_not_exist_cannot_be_downloaded_or_copied_and_deletes_quietly()
    {
        Assert.Null(await Storage.ReadAsync("job/chk-3/_manifest.json", CancellationToken.None));
        Assert.False(await Storage.ExistsAsync("job/chk-3/_manifest.json", CancellationToken.None));
        var download = await Assert.ThrowsAsync<CheckpointObjectNotFoundException>(() =>
            Storage.DownloadFileAsync("job/chk-3/x.sst", LocalPath("x.sst"), expected: null, CancellationToken.None));
        Assert.Equal("job/chk-3/x.sst", download.Path);
        Assert.False(File.Exists(LocalPath("x.sst")));
        var copy = await Assert.ThrowsAsync<CheckpointObjectNotFoundException>(() => Storage.CopyAsync("job/chk-3/x.sst", "savepoints/s/x.sst", CancellationToken.None));
        Assert.Equal("job/chk-3/x.sst", copy.Path);
        await Storage.DeleteAsync("job/chk-3/_manifest.json", CancellationToken.None);
        await Storage.DeletePrefixAsync("job/chk-3", CancellationToken.None);
        Assert.Empty(await ListAsync("job"));
    }

    [Fact]
    public async Task Delete_removes_the_object()
    {
        await Storage.WriteAsync("job/chk-1/_manifest.json", RandomBytes(seed: 10, 10), overwrite: false, CancellationToken.None);

        await Storage.DeleteAsync("job/chk-1/_manifest.json", CancellationToken.None);

        Assert.False(await Storage.ExistsAsync("job/chk-1/_manifest.json", CancellationToken.None));
        Assert.Null(await Storage.ReadAsync("job/chk-1/_manifest.json", CancellationToken.None));
    }

    [Fact]
    public async Task List_returns_the_objects_under_a_prefix_recursively_and_not_those_of_a_longer_name()
    {
        var objects = new Dictionary<string, int>
        {
            ["job/chk-1/_manifest.json"] = 11,
            ["job/chk-1/sub/state/1.sst"] = 22,
            ["job/chk-10/_manifest.json"] = 33,
            ["job/chk-1x"] = 44,
            ["job/shared/2.sst"] = 55,
            ["other/3.sst"] = 66,
        };
        foreach (var (path, length) in objects)
        {
            await Storage.WriteAsync(path, RandomBytes(length, length), overwrite: false, CancellationToken.None);
        }

        var chk1 = await ListAsync("job/chk-1");
        var job = await ListAsync("job");
        var everything = await ListAsync("");

        Assert.Equal(["job/chk-1/_manifest.json", "job/chk-1/sub/state/1.sst"], chk1.Select(static o => o.Path).Order(StringComparer.Ordinal));
        Assert.Equal(objects.Keys.Where(static p => p.StartsWith("job/", StringComparison.Ordinal)).Order(StringComparer.Ordinal), job.Select(static o => o.Path).Order(StringComparer.Ordinal));
        Assert.Equal(objects.Keys.Order(StringComparer.Ordinal), everything.Select(static o => o.Path).Order(StringComparer.Ordinal));
        Assert.All(everything, o =>
        {
            Assert.Equal(objects[o.Path], o.Length);
            Assert.True(o.Checksum is null || o.Checksum == XxHash64Hex(RandomBytes(objects[o.Path], objects[o.Path])), $"checksum of {o.Path}");
        });
        Assert.Empty(await ListAsync("job/chk-2"));
        Assert.Empty(await ListAsync("job/chk-1x"));
    }

    [Fact]
    public async Task DeletePrefix_removes_exactly_the_objects_under_that_prefix()
    {
        string[] paths = ["job/chk-1/_manifest.json", "job/chk-1/a/b.sst", "job/chk-10/_manifest.json", "job/chk-1x", "job/shared/1.sst"];
        foreach (var path in paths)
        {
            await Storage.WriteAsync(path, RandomBytes(seed: 12, 100), overwrite: false, CancellationToken.None);
        }

        await Storage.DeletePrefixAsync("job/chk-1", CancellationToken.None);

        Assert.Equal(["job/chk-10/_manifest.json", "job/chk-1x", "job/shared/1.sst"], (await ListAsync("")).Select(static o => o.Path).Order(StringComparer.Ordinal));
        Assert.False(await Storage.ExistsAsync("job/chk-1/a/b.sst", CancellationToken.None));
    }

    [Fact]
    public async Task Copy_gives_an_identical_object_that_survives_the_deletion_of_its_source()
    {
        var content = RandomBytes(seed: 13, 5 * MiB + 7);
        var source = LocalPath("source");
        await File.WriteAllBytesAsync(source, content);
        var stored = await Storage.UploadFileAsync(source, "job/shared/c.sst", CancellationToken.None);
        await Storage.WriteAsync("savepoints/s1/c.sst", RandomBytes(seed: 14, 10), overwrite: false, CancellationToken.None);

        await Storage.CopyAsync("job/shared/c.sst", "savepoints/s1/c.sst", CancellationToken.None);
        await Storage.DeleteAsync("job/shared/c.sst", CancellationToken.None);

        var target = LocalPath("c.sst");
        await Storage.DownloadFileAsync("savepoints/s1/c.sst", target, stored with { Path = "savepoints/s1/c.sst" }, CancellationToken.None);
        Assert.Equal(content, await File.ReadAllBytesAsync(target));
        var listed = Assert.Single(await ListAsync("savepoints"));
        Assert.Equal(stored with { Path = "savepoints/s1/c.sst", Checksum = listed.Checksum is null ? null : stored.Checksum }, listed);
        Assert.False(await Storage.ExistsAsync("job/shared/c.sst", CancellationToken.None));
    }

    [Fact]
    public async Task CheckAccess_succeeds_and_leaves_nothing_behind()
    {
        await Storage.CheckAccessAsync(CancellationToken.None);

        Assert.Empty(await ListAsync(""));
    }

    [Theory]
    [InlineData("")]
    [InlineData("/job/a")]
    [InlineData("job/../a")]
    [InlineData("..")]
    [InlineData("./a")]
    [InlineData("job\\a")]
    [InlineData("job//a")]
    [InlineData("job/a/")]
    public async Task Invalid_paths_throw_ArgumentException_naming_the_path(string path)
    {
        var local = LocalPath("local");
        await File.WriteAllBytesAsync(local, [1, 2, 3]);
        await Storage.WriteAsync("valid/a", new byte[] { 1 }, overwrite: false, CancellationToken.None);
        List<Func<Task>> calls =
        [
            () => Storage.WriteAsync(path, new byte[] { 1 }, overwrite: true, CancellationToken.None),
            () => Storage.ReadAsync(path, CancellationToken.None),
            () => Storage.ExistsAsync(path, CancellationToken.None),
            () => Storage.DeleteAsync(path, CancellationToken.None),
            () => Storage.DeletePrefixAsync(path, CancellationToken.None),
            () => Storage.UploadFileAsync(local, path, CancellationToken.None),
            () => Storage.DownloadFileAsync(path, LocalPath("out"), expected: null, CancellationToken.None),
            () => Storage.CopyAsync(path, "valid/b", CancellationToken.None),
            () => Storage.CopyAsync("valid/a", path, CancellationToken.None),
        ];
        if (path.Length > 0)
        {
            // An empty prefix lists everything.
            calls.Add(() => ListAsync(path));
        }

        foreach (var call in calls)
        {
            var error = await Assert.ThrowsAnyAsync<ArgumentException>(call);
            Assert.Contains($"'{path}'", error.Message, StringComparison.Ordinal);
        }

        Assert.Equal(["valid/a"], (await ListAsync("")).Select(static o => o.Path));
    }

    protected async Task<List<StoredObject>> ListAsync(string prefix)
    {
        List<StoredObject> result = [];
        await foreach (var stored in Storage.ListAsync(prefix, CancellationToken.None))
        {
            result.Add(stored);
        }

        return result;
    }
}
