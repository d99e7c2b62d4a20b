using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Storage.Blobs;
using StreamGrains.State.Storage;
using StreamGrains.TestInfrastructure;

namespace StreamGrains.Silo.Tests;

/// <summary>
/// Blob checkpoint storage through a <see cref="TokenCredential"/> against Azurite with OAuth: Azurite accepts bearer
/// tokens only over HTTPS and with <c>--oauth basic</c>, where it checks a token's issuer, audience and lifetime but not
/// its signature. The test makes a certificate for 127.0.0.1, starts Azurite's blob service with it, and trusts exactly
/// that certificate.
/// </summary>
public sealed class BlobTokenCredentialTests
{
    [Fact]
    public async Task Storage_authenticated_by_a_token_credential_writes_and_reads_over_azurite_oauth()
    {
        // Installs Azurite when needed (the same tool the other Blob tests use); the HTTP server it starts is not used.
        await (await AzuriteServer.StartAsync()).DisposeAsync();
        using var certificate = CreateCertificate();
        await using var azurite = await HttpsAzurite.StartAsync(certificate);

        var storage = Storage(azurite, certificate, new JwtCredential("https://sts.windows.net/00000000-0000-0000-0000-000000000001/"));
        await storage.CheckAccessAsync(CancellationToken.None);
        await storage.WriteAsync("job/chk-1/_manifest.json", "{}"u8.ToArray(), overwrite: false, CancellationToken.None);
        var read = await storage.ReadAsync("job/chk-1/_manifest.json", CancellationToken.None);

        Assert.Equal("{}"u8.ToArray(), read);

        // A token from an issuer Azurite does not accept is refused: the credential's token is what authenticates.
        var refused = Storage(azurite, certificate, new JwtCredential("https://issuer.invalid/"));
        var ex = await Assert.ThrowsAnyAsync<CheckpointStorageException>(() => refused.ReadAsync("job/chk-1/_manifest.json", CancellationToken.None));
        Assert.Contains("403", ex.ToString(), StringComparison.Ordinal);
    }

    private static BlobCheckpointStorage Storage(HttpsAzurite azurite, X509Certificate2 certificate, TokenCredential credential)
    {
        var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, cert, _, _) => cert?.Thumbprint == certificate.Thumbprint };
        var options = new BlobClientOptions { Transport = new HttpClientTransport(handler), Retry = { MaxRetries = 0 } };
        var service = new BlobServiceClient(azurite.ServiceUri, credential, options);
        return new BlobCheckpointStorage(service.GetBlobContainerClient("oauth-checkpoints"));
    }

    private static X509Certificate2 CreateCertificate()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
    }

    /// <summary>Issues unsigned JWTs for Azure Storage from <paramref name="issuer"/>, valid for an hour.</summary>
    private sealed class JwtCredential(string issuer) : TokenCredential
    {
        public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken)
        {
            var now = DateTimeOffset.UtcNow;
            var header = Base64Url(JsonSerializer.SerializeToUtf8Bytes(new { alg = "RS256", typ = "JWT" }));
            var claims = Base64Url(JsonSerializer.SerializeToUtf8Bytes(new
            {
                aud = "https://storage.azure.com",
                iss = issuer,
                iat = now.AddMinutes(-1).ToUnixTimeSeconds(),
                nbf = now.AddMinutes(-1).ToUnixTimeSeconds(),
                exp = now.AddHours(1).ToUnixTimeSeconds(),
                oid = Guid.Empty,
            }));
            return new AccessToken($"{header}.{claims}.{Base64Url("unsigned"u8.ToArray())}", now.AddHours(1));
        }

        public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
            ValueTask.FromResult(GetToken(requestContext, cancellationToken));

        private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    /// <summary>Azurite's blob service over HTTPS with <c>--oauth basic</c>, in a temporary directory; disposing kills it.</summary>
    private sealed class HttpsAzurite : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly string _directory;
        private readonly StringBuilder _output = new();

        private HttpsAzurite(Process process, string directory, int port)
        {
            _process = process;
            _directory = directory;
            ServiceUri = new Uri($"https://127.0.0.1:{port}/devstoreaccount1");
        }

        public Uri ServiceUri { get; }

        public static async Task<HttpsAzurite> StartAsync(X509Certificate2 certificate)
        {
            var directory = Path.Combine(Path.GetTempPath(), "streamgrains-azurite-oauth", Guid.NewGuid().ToString("N")[..12]);
            Directory.CreateDirectory(directory);
            var certPath = Path.Combine(directory, "cert.pem");
            var keyPath = Path.Combine(directory, "key.pem");
            await File.WriteAllTextAsync(certPath, certificate.ExportCertificatePem());
            await File.WriteAllTextAsync(keyPath, certificate.GetRSAPrivateKey()!.ExportPkcs8PrivateKeyPem());
            var port = LocalSilo.FreePort();
            var start = new ProcessStartInfo("node") { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var argument in new[]
            {
                Path.Combine(ToolDirectory(), "node_modules", "azurite", "dist", "src", "blob", "main.js"),
                "--blobHost", "127.0.0.1", "--blobPort", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "--location", Path.Combine(directory, "data"), "--cert", certPath, "--key", keyPath, "--oauth", "basic",
                "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
            })
            {
                start.ArgumentList.Add(argument);
            }

            var process = Process.Start(start)!;
            var azurite = new HttpsAzurite(process, directory, port);
            process.OutputDataReceived += (_, e) => azurite.OnLine(e.Data);
            process.ErrorDataReceived += (_, e) => azurite.OnLine(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            try
            {
                await azurite.WaitUntilListeningAsync(port);
                return azurite;
            }
            catch
            {
                await azurite.DisposeAsync();
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }

            _process.Dispose();
            Directory.Delete(_directory, recursive: true);
        }

        private static string ToolDirectory()
        {
            for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
            {
                var candidate = Path.Combine(directory.FullName, "tools", "azurite");
                if (File.Exists(Path.Combine(candidate, "package.json")))
                {
                    return candidate;
                }
            }

            throw new InvalidOperationException("No tools/azurite above the test's directory.");
        }

        private void OnLine(string? line)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }

        /// <summary>Waits (at most 60 s) until the port accepts connections, polling the TCP connect.</summary>
        private async Task WaitUntilListeningAsync(int port)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while (true)
            {
                try
                {
                    using var client = new TcpClient();
                    await client.ConnectAsync(IPAddress.Loopback, port);
                    return;
                }
                catch (SocketException) when (!_process.HasExited && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(100);
                }
                catch (SocketException ex)
                {
                    lock (_output)
                    {
                        throw new InvalidOperationException($"Azurite (HTTPS, OAuth) did not start: {_output}", ex);
                    }
                }
            }
        }
    }
}
