using System.Collections.Concurrent;
using System.Diagnostics;
using StreamGrains.State.Storage;
using Xunit.Abstractions;

namespace StreamGrains.State.Tests.Storage;

public sealed class DirectorySyncTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "streamgrains-dirsync-tests", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public async Task Publishing_an_object_syncs_its_directory_once_and_the_parent_of_every_directory_it_created()
    {
        Directory.CreateDirectory(_root);
        var synced = new ConcurrentQueue<string>();
        var storage = new FileSystemCheckpointStorage(Path.Combine(_root, "store")) { DirectorySynced = synced.Enqueue };
        var store = Path.Combine(_root, "store");

        await storage.WriteAsync("job/chk-1/_manifest.json", "{}"u8.ToArray(), overwrite: false, CancellationToken.None);
        var first = synced.ToArray();
        synced.Clear();
        await storage.WriteAsync("job/chk-1/other", "{}"u8.ToArray(), overwrite: true, CancellationToken.None);
        var local = Path.Combine(_root, "local.sst");
        await File.WriteAllBytesAsync(local, new byte[4096]);
        await storage.UploadFileAsync(local, "job/chk-1/000001.sst", CancellationToken.None);
        await storage.CopyAsync("job/chk-1/000001.sst", "job/chk-1/copy.sst", CancellationToken.None);
        var again = synced.ToArray();

        if (!DirectorySync.IsSupported)
        {
            Assert.Empty(first);
            Assert.Empty(again);
            return;
        }

        // The root's parent holds the new root, the root the new job directory, that one chk-1, and chk-1 the manifest.
        Assert.Equal([_root, store, Path.Combine(store, "job"), Path.Combine(store, "job", "chk-1")], first);
        Assert.Equal(Enumerable.Repeat(Path.Combine(store, "job", "chk-1"), 3), again);
    }

    [Fact]
    public async Task A_failed_create_if_absent_syncs_nothing_more_than_the_directories()
    {
        var synced = new ConcurrentQueue<string>();
        var storage = new FileSystemCheckpointStorage(_root) { DirectorySynced = synced.Enqueue };
        await storage.WriteAsync("job/chk-2/_manifest.json", "{}"u8.ToArray(), overwrite: false, CancellationToken.None);
        synced.Clear();

        await Assert.ThrowsAsync<CheckpointStorageException>(() => storage.WriteAsync("job/chk-2/_manifest.json", "{}"u8.ToArray(), overwrite: false, CancellationToken.None));

        Assert.Empty(synced);
    }

    [Fact]
    public void Syncing_a_directory_calls_the_os_and_reports_its_errors()
    {
        Directory.CreateDirectory(_root);

        DirectorySync.Sync(_root);

        if (DirectorySync.IsSupported)
        {
            var error = Assert.Throws<IOException>(() => DirectorySync.Sync(Path.Combine(_root, "no-such-directory")));
            Assert.Contains("no-such-directory", error.Message, StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// A rough measure of what the directory syncs cost on the checkpoint path: manifests (small writes) and uploads of
    /// state files, each published with and without its directory sync, on this machine's temp filesystem.
    /// </summary>
    [Fact]
    public async Task Measure_what_directory_syncs_cost_per_published_object()
    {
        const int Objects = 60;
        var local = Path.Combine(_root, "local.sst");
        Directory.CreateDirectory(_root);
        await File.WriteAllBytesAsync(local, new byte[256 * 1024]);
        var counts = new Dictionary<bool, int>();
        foreach (var sync in new[] { false, true, false, true })
        {
            var synced = 0;
            var storage = new FileSystemCheckpointStorage(Path.Combine(_root, $"store-{sync}-{Guid.NewGuid():N}")) { SyncDirectories = sync, DirectorySynced = _ => Interlocked.Increment(ref synced) };
            await storage.WriteAsync("job/chk-0/_manifest.json", "{}"u8.ToArray(), overwrite: false, CancellationToken.None);
            synced = 0;
            var watch = Stopwatch.StartNew();
            for (var i = 0; i < Objects; i++)
            {
                await storage.WriteAsync($"job/chk-0/m-{i}.json", new byte[2048], overwrite: false, CancellationToken.None);
            }

            var writes = watch.Elapsed;
            watch.Restart();
            for (var i = 0; i < Objects; i++)
            {
                await storage.UploadFileAsync(local, $"job/shared/f-{i}.sst", CancellationToken.None);
            }

            var uploads = watch.Elapsed;
            counts[sync] = synced;
            output.WriteLine($"directory sync {(sync ? "on " : "off")}: {writes.TotalMilliseconds / Objects:F2} ms per 2 KiB manifest write, {uploads.TotalMilliseconds / Objects:F2} ms per 256 KiB upload");
        }

        Assert.Equal(0, counts[false]);
        Assert.Equal(DirectorySync.IsSupported ? (2 * Objects) + 1 : 0, counts[true]);
    }
}
