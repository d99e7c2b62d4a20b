using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using StreamGrains.State.Storage;
using StreamGrains.TestInfrastructure;
using Xunit.Abstractions;

namespace StreamGrains.State.Tests.Storage;

/// <summary>One Azurite blob service for all tests of a class; each test uses its own prefix in one container.</summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    public const string Container = "checkpoints";
    private AzuriteServer? _server;

    public AzuriteServer Server => _server ?? throw new InvalidOperationException("Azurite has not started.");

    /// <summary>How long installing (when needed) and starting Azurite took.</summary>
    public TimeSpan StartTime { get; private set; }

    public BlobContainerClient ContainerClient => new BlobServiceClient(Server.ConnectionString).GetBlobContainerClient(Container);

    public async Task InitializeAsync()
    {
        var elapsed = Stopwatch.StartNew();
        _server = await AzuriteServer.StartAsync();
        StartTime = elapsed.Elapsed;
        await ContainerClient.CreateIfNotExistsAsync();
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

public sealed class BlobCheckpointStorageTests : CheckpointStorageContractTests, IClassFixture<AzuriteFixture>
{
    private readonly AzuriteFixture _azurite;
    private readonly ITestOutputHelper _output;
    private readonly string _prefix = $"test-{Guid.NewGuid():N}";
    private readonly BlobCheckpointStorage _storage;

    public BlobCheckpointStorageTests(AzuriteFixture azurite, ITestOutputHelper output)
    {
        _azurite = azurite;
        _output = output;
        _storage = BlobCheckpointStorage.Create(azurite.Server.ConnectionString, AzuriteFixture.Container, _prefix);
        output.WriteLine($"Azurite installed (when needed) and started in {azurite.StartTime.TotalSeconds:0.0} s");
    }

    protected override ICheckpointStorage Storage => _storage;

    protected override async Task CorruptAsync(string path)
    {
        var blob = _azurite.ContainerClient.GetBlobClient($"{_prefix}/{path}");
        var properties = (await blob.GetPropertiesAsync()).Value;
        var content = (await blob.DownloadContentAsync()).Value.Content.ToArray();
        content[content.Length / 2] ^= 0xFF;
        await blob.UploadAsync(BinaryData.FromBytes(content), new BlobUploadOptions { Metadata = properties.Metadata });
    }

    [Fact]
    public async Task Objects_are_named_prefix_plus_path_and_carry_their_XxHash64_as_metadata()
    {
        var content = RandomBytes(seed: 30, 9 << 20);
        var local = LocalPath("source");
        await File.WriteAllBytesAsync(local, content);

        var stored = await _storage.UploadFileAsync(local, "job/shared/1.sst", CancellationToken.None);

        var properties = (await _azurite.ContainerClient.GetBlobClient($"{_prefix}/job/shared/1.sst").GetPropertiesAsync()).Value;
        Assert.Equal(XxHash64Hex(content), properties.Metadata[BlobCheckpointStorage.ChecksumMetadataKey]);
        Assert.Equal(stored.Checksum, properties.Metadata[BlobCheckpointStorage.ChecksumMetadataKey]);
        Assert.Equal(content.Length, properties.ContentLength);
        var other = BlobCheckpointStorage.Create(_azurite.Server.ConnectionString, AzuriteFixture.Container, _prefix + "-other");
        await foreach (var unexpected in other.ListAsync("", CancellationToken.None))
        {
            Assert.Fail($"a storage with another prefix lists {unexpected.Path}");
        }
    }

    [Fact]
    public void Location_names_the_endpoint_container_and_prefix() =>
        Assert.Equal($"http://127.0.0.1:{_azurite.Server.Port}/devstoreaccount1/{AzuriteFixture.Container}/{_prefix}", _storage.Location);

    [Fact]
    public async Task Read_of_an_object_whose_content_does_not_match_its_recorded_checksum_throws_corrupt()
    {
        await _storage.WriteAsync("job/chk-1/_manifest.json", RandomBytes(seed: 31, 1_000), overwrite: false, CancellationToken.None);

        await CorruptAsync("job/chk-1/_manifest.json");

        var error = await Assert.ThrowsAsync<CheckpointStorageCorruptException>(() => _storage.ReadAsync("job/chk-1/_manifest.json", CancellationToken.None));
        Assert.Equal("job/chk-1/_manifest.json", error.Path);
    }

    [Fact]
    public async Task Copy_keeps_the_checksum_metadata()
    {
        await _storage.WriteAsync("job/shared/1.sst", RandomBytes(seed: 32, 4_000), overwrite: false, CancellationToken.None);

        await _storage.CopyAsync("job/shared/1.sst", "savepoints/s/1.sst", CancellationToken.None);

        var properties = (await _azurite.ContainerClient.GetBlobClient($"{_prefix}/savepoints/s/1.sst").GetPropertiesAsync()).Value;
        Assert.Equal(XxHash64Hex(RandomBytes(seed: 32, 4_000)), properties.Metadata[BlobCheckpointStorage.ChecksumMetadataKey]);
    }

    [Fact]
    public async Task CheckAccess_creates_a_missing_container()
    {
        var container = $"new-{Guid.NewGuid():N}";
        var storage = BlobCheckpointStorage.Create(_azurite.Server.ConnectionString, container);

        await storage.CheckAccessAsync(CancellationToken.None);

        var client = new BlobServiceClient(_azurite.Server.ConnectionString).GetBlobContainerClient(container);
        Assert.True((await client.ExistsAsync()).Value);
        Assert.Empty(await ToListAsync(client.GetBlobsAsync()));
    }

    [Fact]
    public async Task CheckAccess_with_a_wrong_account_key_reports_failed_authentication()
    {
        var wrongKey = Convert.ToBase64String(RandomBytes(seed: 33, 64));
        var connectionString = $"DefaultEndpointsProtocol=http;AccountName={AzuriteServer.AccountName};AccountKey={wrongKey};BlobEndpoint={_azurite.Server.BlobEndpoint};";
        var storage = BlobCheckpointStorage.Create(connectionString, AzuriteFixture.Container, _prefix);

        var error = await Assert.ThrowsAsync<CheckpointStorageException>(() => storage.CheckAccessAsync(CancellationToken.None));

        _output.WriteLine(error.Message);
        Assert.Contains("authentication failed", error.Message, StringComparison.Ordinal);
        Assert.Contains(_azurite.Server.BlobEndpoint.ToString(), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CheckAccess_with_an_invalid_container_name_says_so()
    {
        var storage = BlobCheckpointStorage.Create(_azurite.Server.ConnectionString, "Invalid_Name");

        var error = await Assert.ThrowsAsync<CheckpointStorageException>(() => storage.CheckAccessAsync(CancellationToken.None));

        _output.WriteLine(error.Message);
        Assert.Contains("container name is invalid", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CheckAccess_against_an_unused_port_fails_with_unreachable_within_20_seconds()
    {
        var port = UnusedPort();
        var connectionString = $"DefaultEndpointsProtocol=http;AccountName={AzuriteServer.AccountName};AccountKey={AzuriteServer.AccountKey};BlobEndpoint=http://127.0.0.1:{port}/{AzuriteServer.AccountName};";
        var storage = BlobCheckpointStorage.Create(connectionString, AzuriteFixture.Container);
        var elapsed = Stopwatch.StartNew();

        var error = await Assert.ThrowsAsync<CheckpointStorageException>(() => storage.CheckAccessAsync(CancellationToken.None));

        _output.WriteLine(error.Message);
        _output.WriteLine($"failed after {elapsed.Elapsed.TotalSeconds:0.00} s");
        Assert.True(elapsed.Elapsed < TimeSpan.FromSeconds(20), $"took {elapsed.Elapsed}");
        Assert.Contains("unreachable", error.Message, StringComparison.Ordinal);
        Assert.Contains($"127.0.0.1:{port}/{AzuriteServer.AccountName}/{AzuriteFixture.Container}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CheckAccess_against_an_endpoint_that_never_answers_fails_within_the_network_timeouts()
    {
        // The kernel completes the handshake for the listen backlog; nobody ever reads the request or answers it.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var port = ((IPEndPoint)silent.LocalEndpoint).Port;
        var connectionString = $"DefaultEndpointsProtocol=http;AccountName={AzuriteServer.AccountName};AccountKey={AzuriteServer.AccountKey};BlobEndpoint=http://127.0.0.1:{port}/{AzuriteServer.AccountName};";
        var storage = BlobCheckpointStorage.Create(connectionString, AzuriteFixture.Container, options: new BlobCheckpointStorageOptions { MaxRetries = 1, NetworkTimeout = TimeSpan.FromSeconds(1) });
        var elapsed = Stopwatch.StartNew();

        var error = await Assert.ThrowsAsync<CheckpointStorageException>(() => storage.CheckAccessAsync(CancellationToken.None));

        _output.WriteLine($"failed after {elapsed.Elapsed.TotalSeconds:0.00} s");
        _output.WriteLine(error.Message);
        Assert.True(elapsed.Elapsed < TimeSpan.FromSeconds(10), $"took {elapsed.Elapsed}");
        Assert.Contains("did not answer in time", error.Message, StringComparison.Ordinal);
        Assert.Contains($"127.0.0.1:{port}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Behind_a_blocked_proxy_an_upload_fails_and_after_unblocking_the_next_one_succeeds()
    {
        await using var proxy = await TcpFaultProxy.StartAsync(new IPEndPoint(IPAddress.Loopback, _azurite.Server.Port));
        var connectionString = $"DefaultEndpointsProtocol=http;AccountName={AzuriteServer.AccountName};AccountKey={AzuriteServer.AccountKey};BlobEndpoint=http://127.0.0.1:{proxy.Port}/{AzuriteServer.AccountName};";
        var storage = BlobCheckpointStorage.Create(connectionString, AzuriteFixture.Container, _prefix, new BlobCheckpointStorageOptions { MaxRetries = 1, NetworkTimeout = TimeSpan.FromSeconds(2) });
        var content = RandomBytes(seed: 34, 3 << 20);
        var local = LocalPath("source");
        await File.WriteAllBytesAsync(local, content);
        await storage.UploadFileAsync(local, "before.sst", CancellationToken.None);

        proxy.Block();
        var failing = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<CheckpointStorageException>(() => storage.UploadFileAsync(local, "blocked.sst", CancellationToken.None));
        _output.WriteLine($"failed after {failing.Elapsed.TotalSeconds:0.00} s");
        proxy.Unblock();
        var stored = await storage.UploadFileAsync(local, "after.sst", CancellationToken.None);

        _output.WriteLine(error.Message);
        Assert.Contains("blocked.sst", error.Message, StringComparison.Ordinal);
        Assert.Contains($"127.0.0.1:{proxy.Port}", error.Message, StringComparison.Ordinal);
        Assert.False(await _storage.ExistsAsync("blocked.sst", CancellationToken.None));
        await _storage.DownloadFileAsync("after.sst", LocalPath("after.sst"), stored, CancellationToken.None);
        Assert.Equal(content, await File.ReadAllBytesAsync(LocalPath("after.sst")));
    }

    [Fact]
    public async Task Write_read_and_check_in_a_missing_container_throw_a_storage_exception_that_names_the_container()
    {
        var storage = BlobCheckpointStorage.Create(_azurite.Server.ConnectionString, $"missing-{Guid.NewGuid():N}");

        var error = await Assert.ThrowsAsync<CheckpointStorageException>(() => storage.WriteAsync("a", new byte[] { 1 }, overwrite: true, CancellationToken.None));

        _output.WriteLine(error.Message);
        Assert.Contains("container does not exist", error.Message, StringComparison.Ordinal);

        // Without the container nothing can be said about an object: no "absent", no "missing" (which would make a
        // restart give up a checkpoint).
        var read = await Assert.ThrowsAsync<CheckpointStorageException>(() => storage.ReadAsync("a", CancellationToken.None));
        var exists = await Assert.ThrowsAsync<CheckpointStorageException>(() => storage.ExistsAsync("a", CancellationToken.None));
        var download = await Assert.ThrowsAsync<CheckpointStorageException>(() => storage.DownloadFileAsync("a", LocalPath("a"), null, CancellationToken.None));
        Assert.All(new[] { read, exists, download }, e => Assert.Contains("container", e.Message, StringComparison.Ordinal));
        Assert.IsNotType<CheckpointObjectNotFoundException>(download);
    }

    [Fact]
    public async Task A_download_damaged_in_transit_is_downloaded_again_and_a_second_mismatch_counts_as_corrupt()
    {
        var content = RandomBytes(seed: 35, 9 << 20);
        var local = LocalPath("transit.sst");
        await File.WriteAllBytesAsync(local, content);
        var stored = await _storage.UploadFileAsync(local, "transit.sst", CancellationToken.None);

        // Real service, damage on the way: a client policy flips one byte of the first download responses' bodies.
        var once = new DamageDownloads(damaged: 1);
        await StorageWith(once).DownloadFileAsync("transit.sst", LocalPath("once.sst"), stored, CancellationToken.None);
        var always = new DamageDownloads(damaged: int.MaxValue);
        var error = await Assert.ThrowsAsync<CheckpointStorageCorruptException>(() => StorageWith(always).DownloadFileAsync("transit.sst", LocalPath("always.sst"), stored, CancellationToken.None));

        Assert.Equal(1, once.Damaged);
        Assert.True(once.Downloads > once.Damaged, $"{once.Downloads} download responses");
        Assert.Equal(content, await File.ReadAllBytesAsync(LocalPath("once.sst")));
        Assert.Equal(2, always.DamagedFiles);
        Assert.False(File.Exists(LocalPath("always.sst")));
        Assert.Contains("transit.sst", error.Message, StringComparison.Ordinal);
    }

    private BlobCheckpointStorage StorageWith(HttpPipelinePolicy policy)
    {
        var options = new BlobClientOptions();
        options.AddPolicy(policy, HttpPipelinePosition.PerRetry);
        var container = new BlobServiceClient(_azurite.Server.ConnectionString, options).GetBlobContainerClient(AzuriteFixture.Container);
        return new BlobCheckpointStorage(container, _prefix);
    }

    /// <summary>Flips one byte in the body of the first <c>damaged</c> successful download (GET) responses.</summary>
    private sealed class DamageDownloads(int damaged) : HttpPipelinePolicy
    {
        private int _downloads;
        private int _damaged;
        private int _ranges;

        public int Downloads => _downloads;

        public int Damaged => _damaged;

        /// <summary>Downloads of a whole file damaged: responses for the first range of a file (offset 0) that were damaged.</summary>
        public int DamagedFiles => _ranges;

        public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline) => throw new NotSupportedException("The storage is asynchronous.");

        public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            await ProcessNextAsync(message, pipeline);
            if (message.Request.Method != RequestMethod.Get || message.Response.Status is not (200 or 206) || message.Response.ContentStream is not { } body)
            {
                return;
            }

            Interlocked.Increment(ref _downloads);
            if (Interlocked.Increment(ref _damaged) > damaged)
            {
                Interlocked.Decrement(ref _damaged);
                return;
            }

            var bytes = new MemoryStream();
            await body.CopyToAsync(bytes);
            var buffer = bytes.ToArray();
            buffer[buffer.Length / 2] ^= 0x01;
            message.Response.ContentStream = new MemoryStream(buffer);
            if (!message.Request.Headers.TryGetValue("x-ms-range", out var range) || range.StartsWith("bytes=0-", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref _ranges);
            }
        }
    }

    private static int UnusedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task<List<T>> ToListAsync<T>(IAsyncEnumerable<T> items)
    {
        List<T> list = [];
        await foreach (var item in items)
        {
            list.Add(item);
        }

        return list;
    }
}
