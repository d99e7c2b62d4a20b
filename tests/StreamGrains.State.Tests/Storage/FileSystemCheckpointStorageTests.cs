using System.Diagnostics;
using System.Globalization;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Tests.Storage;

public sealed class FileSystemCheckpointStorageTests : CheckpointStorageContractTests
{
    private readonly TempDirectory _directory = new();
    private readonly FileSystemCheckpointStorage _storage;

    public FileSystemCheckpointStorageTests() => _storage = new FileSystemCheckpointStorage(Root);

    protected override ICheckpointStorage Storage => _storage;

    private string Root => _directory.Sub("root");

    public override void Dispose()
    {
        _directory.Dispose();
        base.Dispose();
    }

    protected override async Task CorruptAsync(string path)
    {
        await using var file = new FileStream(Path.Combine(Root, path), FileMode.Open, FileAccess.ReadWrite);
        file.Position = file.Length / 2;
        var original = file.ReadByte();
        file.Position = file.Length / 2;
        file.WriteByte((byte)(original ^ 0xFF));
    }

    [Fact]
    public void Location_is_a_file_URI_of_the_full_root_path() =>
        Assert.Equal("file://" + Path.GetFullPath(Root), _storage.Location);

    [Fact]
    public async Task CheckAccess_on_a_root_that_cannot_be_created_throws_naming_the_root()
    {
        var file = _directory.Sub("a-regular-file");
        await File.WriteAllTextAsync(file, "not a directory");
        var storage = new FileSystemCheckpointStorage(Path.Combine(file, "checkpoints"));

        var error = await Assert.ThrowsAsync<CheckpointStorageException>(() => storage.CheckAccessAsync(CancellationToken.None));

        Assert.Contains(Path.Combine(file, "checkpoints"), error.Message, StringComparison.Ordinal);
        Assert.Contains($"'{file}' is a file, not a directory", error.Message, StringComparison.Ordinal);
        Assert.NotNull(error.InnerException);
    }

    [Fact]
    public async Task A_file_behind_a_path_that_cannot_be_read_is_not_reported_missing()
    {
        await _storage.WriteAsync("job/shared/a.sst", new byte[] { 1, 2, 3 }, overwrite: true, CancellationToken.None);
        var stored = new StoredObject("job/shared/a.sst", 3, null);

        // "shared" is still listed, but cannot be entered (here it became a regular file; as root, permissions would not
        // stop this process): as with a directory without permissions or a stale mount, File.Exists says false.
        Directory.Delete(Path.Combine(Root, "job", "shared"), recursive: true);
        await File.WriteAllBytesAsync(Path.Combine(Root, "job", "shared"), [0]);

        var exists = await Assert.ThrowsAsync<CheckpointStorageException>(() => _storage.ExistsAsync("job/shared/a.sst", CancellationToken.None));
        var download = await Assert.ThrowsAsync<CheckpointStorageException>(() => _storage.DownloadFileAsync("job/shared/a.sst", _directory.Sub("a.sst"), stored, CancellationToken.None));
        var read = await Assert.ThrowsAsync<CheckpointStorageException>(() => _storage.ReadAsync("job/shared/a.sst", CancellationToken.None));

        Assert.All(new[] { exists, download }, e => Assert.Contains("cannot be read", e.Message, StringComparison.Ordinal));
        Assert.Contains("job/shared/a.sst", read.Message, StringComparison.Ordinal);
        Assert.IsNotType<CheckpointObjectNotFoundException>(download);

        // Truly missing files, in a directory that exists or one that does not, stay missing.
        Assert.False(await _storage.ExistsAsync("job/other.sst", CancellationToken.None));
        Assert.False(await _storage.ExistsAsync("job/chk-9/x.sst", CancellationToken.None));
        Assert.Null(await _storage.ReadAsync("job/chk-9/_manifest.json", CancellationToken.None));
        await Assert.ThrowsAsync<CheckpointObjectNotFoundException>(() => _storage.DownloadFileAsync("job/chk-9/x.sst", _directory.Sub("x.sst"), null, CancellationToken.None));
    }

    [Fact]
    public async Task CheckAccess_creates_a_missing_root()
    {
        await _storage.CheckAccessAsync(CancellationToken.None);

        Assert.True(Directory.Exists(Root));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Root));
    }

    [Fact]
    public async Task Copy_is_a_hard_link_on_Linux()
    {
        var content = RandomBytes(seed: 20, 1 << 20);
        var local = LocalPath("source");
        await File.WriteAllBytesAsync(local, content);
        await _storage.UploadFileAsync(local, "job/shared/1.sst", CancellationToken.None);

        await _storage.CopyAsync("job/shared/1.sst", "savepoints/s/1.sst", CancellationToken.None);

        Assert.Equal(content, await File.ReadAllBytesAsync(Path.Combine(Root, "savepoints/s/1.sst")));
        if (OperatingSystem.IsLinux())
        {
            var source = await StatAsync(Path.Combine(Root, "job/shared/1.sst"));
            var copy = await StatAsync(Path.Combine(Root, "savepoints/s/1.sst"));
            Assert.Equal(2, source.Links);
            Assert.Equal(source.Inode, copy.Inode);
        }
    }

    [Fact]
    public async Task Successful_operations_leave_no_temporary_files()
    {
        var local = LocalPath("source");
        await File.WriteAllBytesAsync(local, RandomBytes(seed: 21, 70_000));
        await _storage.UploadFileAsync(local, "job/shared/1.sst", CancellationToken.None);
        await _storage.WriteAsync("job/chk-1/_manifest.json", RandomBytes(seed: 22, 100), overwrite: false, CancellationToken.None);
        await _storage.WriteAsync("job/chk-1/_manifest.json", RandomBytes(seed: 23, 100), overwrite: true, CancellationToken.None);
        await Assert.ThrowsAsync<CheckpointStorageException>(() => _storage.WriteAsync("job/chk-1/_manifest.json", RandomBytes(seed: 24, 100), overwrite: false, CancellationToken.None));
        await _storage.CopyAsync("job/shared/1.sst", "savepoints/s/1.sst", CancellationToken.None);
        await _storage.DownloadFileAsync("job/shared/1.sst", LocalPath("download/1.sst"), expected: null, CancellationToken.None);

        var files = Directory.EnumerateFiles(Root, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(Root, f).Replace('\\', '/')).Order(StringComparer.Ordinal);
        Assert.Equal(["job/chk-1/_manifest.json", "job/shared/1.sst", "savepoints/s/1.sst"], files);
        Assert.Equal(["1.sst"], Directory.EnumerateFiles(LocalPath("download")).Select(Path.GetFileName));
    }

    [Fact]
    public async Task TryLink_verifies_the_checksum_and_links_the_stored_object_on_Linux()
    {
        var content = RandomBytes(seed: 30, 1 << 20);
        var local = LocalPath("source");
        await File.WriteAllBytesAsync(local, content);
        var stored = await _storage.UploadFileAsync(local, "job/shared/7.sst", CancellationToken.None);
        var target = LocalPath("restore/7.sst");

        var linked = await _storage.TryLinkFileAsync("job/shared/7.sst", target, stored, CancellationToken.None);

        Assert.Equal(OperatingSystem.IsLinux(), linked);
        if (linked)
        {
            Assert.Equal(content, await File.ReadAllBytesAsync(target));
            Assert.Equal((await StatAsync(Path.Combine(Root, "job/shared/7.sst"))).Inode, (await StatAsync(target)).Inode);
            Assert.Equal(["7.sst"], Directory.EnumerateFiles(LocalPath("restore")).Select(Path.GetFileName));
        }
    }

    [Fact]
    public async Task TryLink_of_a_corrupt_object_throws_corrupt_and_leaves_no_file()
    {
        var local = LocalPath("source");
        await File.WriteAllBytesAsync(local, RandomBytes(seed: 31, 100_000));
        var stored = await _storage.UploadFileAsync(local, "job/shared/8.sst", CancellationToken.None);
        await CorruptAsync("job/shared/8.sst");

        if (OperatingSystem.IsLinux())
        {
            var error = await Assert.ThrowsAsync<CheckpointStorageCorruptException>(() => _storage.TryLinkFileAsync("job/shared/8.sst", LocalPath("restore/8.sst"), stored, CancellationToken.None));
            Assert.Equal("job/shared/8.sst", error.Path);
        }
        else
        {
            // No hard links: the caller downloads, and the download verifies.
            Assert.False(await _storage.TryLinkFileAsync("job/shared/8.sst", LocalPath("restore/8.sst"), stored, CancellationToken.None));
        }

        Assert.Empty(Directory.EnumerateFileSystemEntries(LocalPath("restore")));
        await Assert.ThrowsAsync<CheckpointObjectNotFoundException>(() => _storage.TryLinkFileAsync("job/shared/missing.sst", LocalPath("restore/9.sst"), null, CancellationToken.None));
    }

    [Fact]
    public async Task TryLink_with_linking_switched_off_returns_false_and_leaves_no_file()
    {
        var storage = new FileSystemCheckpointStorage(Root) { LinkOnRestore = false };
        var local = LocalPath("source");
        await File.WriteAllBytesAsync(local, RandomBytes(seed: 32, 1000));
        var stored = await storage.UploadFileAsync(local, "job/shared/1.sst", CancellationToken.None);

        Assert.False(await storage.TryLinkFileAsync("job/shared/1.sst", LocalPath("restore/1.sst"), stored, CancellationToken.None));
        Assert.False(File.Exists(LocalPath("restore/1.sst")));
    }

    /// <summary>The link count and inode of a file, from GNU stat.</summary>
    private static async Task<(int Links, long Inode)> StatAsync(string path)
    {
        var start = new ProcessStartInfo("stat") { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var argument in new[] { "-c", "%h %i", path })
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var output = (await process.StandardOutput.ReadToEndAsync()).Trim().Split(' ');
        await process.WaitForExitAsync();
        Assert.Equal(0, process.ExitCode);
        return (int.Parse(output[0], CultureInfo.InvariantCulture), long.Parse(output[1], CultureInfo.InvariantCulture));
    }
}
