using System.Net;
using System.Net.Sockets;
using Azure.Storage.Blobs;

namespace StreamGrains.TestInfrastructure.Tests;

/// <summary>The Azurite fixture itself: both services answer, and disposing stops them and deletes their data.</summary>
public sealed class AzuriteServerTests
{
    [Fact]
    public async Task Starts_blob_and_table_services_on_loopback_and_dispose_stops_them_and_deletes_their_data()
    {
        var server = await AzuriteServer.StartAsync(startTableService: true);
        int tablePort;
        try
        {
            tablePort = server.TablePort!.Value;
            Assert.Equal($"http://127.0.0.1:{server.Port}/devstoreaccount1", server.BlobEndpoint.ToString().TrimEnd('/'));
            Assert.Contains($"TableEndpoint=http://127.0.0.1:{tablePort}/devstoreaccount1", server.ConnectionString, StringComparison.Ordinal);
            var container = new BlobServiceClient(server.ConnectionString).GetBlobContainerClient("fixture");
            await container.CreateAsync();
            await container.GetBlobClient("a").UploadAsync(BinaryData.FromString("hello"));
            Assert.Equal("hello", (await container.GetBlobClient("a").DownloadContentAsync()).Value.Content.ToString());
            using var http = new HttpClient();
            using var tables = await http.GetAsync(new Uri($"{server.TableEndpoint}/Tables"));
            Assert.True((int)tables.StatusCode is >= 200 and < 500, $"table service answered {tables.StatusCode}");
            Assert.True(Directory.Exists(server.DataDirectory));
        }
        finally
        {
            await server.DisposeAsync();
        }

        Assert.False(Directory.Exists(server.DataDirectory));
        Assert.False(await AcceptsAsync(server.Port), "the blob service still accepts connections");
        Assert.False(await AcceptsAsync(tablePort), "the table service still accepts connections");
    }

    private static async Task<bool> AcceptsAsync(int port)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
