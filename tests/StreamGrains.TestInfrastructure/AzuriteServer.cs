using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Azure.Storage.Blobs;

namespace StreamGrains.TestInfrastructure;

/// <summary>
/// A real Azure Storage emulator (Azurite, pinned in <c>tools/azurite/package.json</c>) for tests: its blob service, and
/// optionally its table service, each in its own process on a free loopback port with its data in a new temp directory.
/// </summary>
/// <remarks>
/// <para>Azurite is installed by <c>npm ci</c> in <c>tools/azurite</c> (CI does it before the tests); when it is missing,
/// <see cref="StartAsync"/> installs it, holding <c>tools/azurite/.install.lock</c> so that test processes running in
/// parallel install it once. Node.js and npm must be on PATH: without them <see cref="StartAsync"/> throws, it never
/// skips.</para>
/// <para>Nothing it starts listens on anything but 127.0.0.1. <see cref="DisposeAsync"/> kills the processes and deletes
/// their data.</para>
/// </remarks>
public sealed class AzuriteServer : IAsyncDisposable
{
    /// <summary>The emulator's well-known account name.</summary>
    public const string AccountName = "devstoreaccount1";

    /// <summary>The emulator's well-known account key (public, documented by Microsoft; not a secret).</summary>
    public const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan InstallTimeout = TimeSpan.FromMinutes(10);
    private readonly List<AzuriteProcess> _processes;
    private readonly string _dataDirectory;
    private int _disposed;

    private AzuriteServer(List<AzuriteProcess> processes, string dataDirectory)
    {
        _processes = processes;
        _dataDirectory = dataDirectory;
        Port = processes[0].Port;
        BlobEndpoint = new Uri($"http://127.0.0.1:{Port}/{AccountName}");
        if (processes.Count > 1)
        {
            TablePort = processes[1].Port;
            TableEndpoint = new Uri($"http://127.0.0.1:{TablePort}/{AccountName}");
        }

        var connectionString = new StringBuilder($"DefaultEndpointsProtocol=http;AccountName={AccountName};AccountKey={AccountKey};BlobEndpoint={BlobEndpoint};");
        if (TableEndpoint is not null)
        {
            connectionString.Append(CultureInfo.InvariantCulture, $"TableEndpoint={TableEndpoint};");
        }

        ConnectionString = connectionString.ToString();
    }

    /// <summary>The blob service's port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>The blob service endpoint, <c>http://127.0.0.1:{port}/devstoreaccount1</c>.</summary>
    public Uri BlobEndpoint { get; }

    /// <summary>The table service's port, when it was started.</summary>
    public int? TablePort { get; }

    /// <summary>The table service endpoint, when it was started.</summary>
    public Uri? TableEndpoint { get; }

    /// <summary>The blob service's process (for benchmarks that measure the emulator's CPU time).</summary>
    public Process BlobProcess => _processes[0].Process;

    /// <summary>The temp directory where the services keep their data; deleted on dispose.</summary>
    public string DataDirectory => _dataDirectory;

    /// <summary>A connection string for the emulator's account with the endpoints of the started services.</summary>
    public string ConnectionString { get; }

    /// <summary>Installs Azurite when needed and starts its blob service (and table service when asked); returns when they answer requests.</summary>
    /// <exception cref="InvalidOperationException">When Node.js or npm is missing, the install fails, or a service does not come up within 60 s (with its output).</exception>
    public static async Task<AzuriteServer> StartAsync(bool startTableService = false, CancellationToken cancellationToken = default)
    {
        var toolDirectory = FindToolDirectory();
        await EnsureInstalledAsync(toolDirectory, cancellationToken);
        var dataDirectory = Path.Combine(Path.GetTempPath(), "streamgrains-azurite", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dataDirectory);
        List<AzuriteProcess> processes = [];
        try
        {
            processes.Add(await AzuriteProcess.StartAsync(toolDirectory, "blob", Path.Combine(dataDirectory, "blob"), IsBlobServiceReadyAsync, cancellationToken));
            if (startTableService)
            {
                processes.Add(await AzuriteProcess.StartAsync(toolDirectory, "table", Path.Combine(dataDirectory, "table"), IsTableServiceReadyAsync, cancellationToken));
            }

            return new AzuriteServer(processes, dataDirectory);
        }
        catch
        {
            foreach (var process in processes)
            {
                await process.DisposeAsync();
            }

            DeleteDirectory(dataDirectory);
            throw;
        }
    }

    /// <summary>Kills the emulator's processes and deletes their data.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (var process in _processes)
        {
            await process.DisposeAsync();
        }

        DeleteDirectory(_dataDirectory);
    }

    /// <summary>The directory <c>tools/azurite</c> of the repository this test runs from.</summary>
    private static string FindToolDirectory()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "tools", "azurite");
            if (File.Exists(Path.Combine(candidate, "package.json")))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException($"Azurite cannot be started: no directory above {AppContext.BaseDirectory} contains tools/azurite/package.json.");
    }

    private static bool IsInstalled(string toolDirectory) =>
        File.Exists(BlobScript(toolDirectory)) && File.Exists(Path.Combine(toolDirectory, "node_modules", ".package-lock.json"));

    private static string BlobScript(string toolDirectory) => Path.Combine(toolDirectory, "node_modules", "azurite", "dist", "src", "blob", "main.js");

    /// <summary>Runs <c>npm ci</c> in <paramref name="toolDirectory"/> unless Azurite is installed, once across processes.</summary>
    private static async Task EnsureInstalledAsync(string toolDirectory, CancellationToken cancellationToken)
    {
        if (IsInstalled(toolDirectory))
        {
            return;
        }

        var deadline = Stopwatch.StartNew();
        FileStream? lockFile = null;
        while (lockFile is null)
        {
            try
            {
                // FileShare.None is an exclusive advisory lock (flock) on Unix, a sharing lock on Windows: either way one process at a time.
                lockFile = new FileStream(Path.Combine(toolDirectory, ".install.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (deadline.Elapsed < InstallTimeout)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), cancellationToken);
            }
        }

        await using (lockFile)
        {
            if (IsInstalled(toolDirectory))
            {
                return;
            }

            var (exitCode, output) = await RunAsync("npm", ["ci", "--no-audit", "--no-fund"], toolDirectory, InstallTimeout, cancellationToken);
            if (exitCode != 0 || !IsInstalled(toolDirectory))
            {
                throw new InvalidOperationException($"Installing Azurite with 'npm ci --no-audit --no-fund' in {toolDirectory} failed (exit code {exitCode}):{Environment.NewLine}{output}");
            }
        }
    }

    /// <summary>Runs a command to its end; returns its exit code and combined output.</summary>
    private static async Task<(int ExitCode, string Output)> RunAsync(string fileName, string[] arguments, string workingDirectory, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(fileName) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = StartProcess(start);
        var output = new BoundedLog();
        process.OutputDataReceived += (_, e) => output.Add(e.Data);
        process.ErrorDataReceived += (_, e) => output.Add(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(timeoutSource.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            cancellationToken.ThrowIfCancellationRequested();
            throw new InvalidOperationException($"'{fileName} {string.Join(' ', arguments)}' in {workingDirectory} did not finish within {timeout}:{Environment.NewLine}{output}");
        }

        return (process.ExitCode, output.ToString());
    }

    private static Process StartProcess(ProcessStartInfo start)
    {
        try
        {
            return Process.Start(start) ?? throw new InvalidOperationException($"'{start.FileName}' did not start.");
        }
        catch (Win32Exception ex)
        {
            throw new InvalidOperationException(
                $"Azurite cannot be started: '{start.FileName}' was not found or cannot run ({ex.Message}). Install Node.js (20 or newer) with npm and put them on PATH; " +
                "the tests that use Azure Blob Storage need them and are not skipped without them.",
                ex);
        }
    }

    private static async Task<bool> IsBlobServiceReadyAsync(int port, CancellationToken cancellationToken)
    {
        var connectionString = $"DefaultEndpointsProtocol=http;AccountName={AccountName};AccountKey={AccountKey};BlobEndpoint=http://127.0.0.1:{port}/{AccountName};";
        var options = new BlobClientOptions { Retry = { MaxRetries = 0, NetworkTimeout = TimeSpan.FromSeconds(5) } };
        var container = new BlobServiceClient(connectionString, options).GetBlobContainerClient("azurite-ready-" + Guid.NewGuid().ToString("N"));
        await container.CreateAsync(cancellationToken: cancellationToken);
        await container.DeleteAsync(cancellationToken: cancellationToken);
        return true;
    }

    private static async Task<bool> IsTableServiceReadyAsync(int port, CancellationToken cancellationToken)
    {
        // Any HTTP answer proves the service is serving; this project has no table client to sign a real request with.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/{AccountName}/Tables"), cancellationToken);
        return (int)response.StatusCode is >= 200 and < 500;
    }

    private static void DeleteDirectory(string directory)
    {
        try
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
        catch (IOException)
        {
            // A file still held open by a dying process: the temp directory is cleaned by the OS eventually.
        }
    }

    /// <summary>Ports from the OS's ephemeral range that are free right now.</summary>
    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>The last lines a process printed, for error messages.</summary>
    private sealed class BoundedLog
    {
        private const int MaxLines = 200;
        private readonly Queue<string> _lines = new();

        public void Add(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (_lines)
            {
                _lines.Enqueue(line);
                if (_lines.Count > MaxLines)
                {
                    _lines.Dequeue();
                }
            }
        }

        public override string ToString()
        {
            lock (_lines)
            {
                return string.Join(Environment.NewLine, _lines);
            }
        }
    }

    /// <summary>One Azurite service process.</summary>
    private sealed class AzuriteProcess : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly BoundedLog _output;

        private AzuriteProcess(Process process, BoundedLog output, int port)
        {
            _process = process;
            _output = output;
            Port = port;
        }

        public int Port { get; }

        public Process Process => _process;

        /// <summary>Starts the service on a free port (trying another when the port was taken meanwhile) and waits until <paramref name="isReady"/> succeeds.</summary>
        public static async Task<AzuriteProcess> StartAsync(string toolDirectory, string service, string location, Func<int, CancellationToken, Task<bool>> isReady, CancellationToken cancellationToken)
        {
            const int Attempts = 3;
            for (var attempt = 1; ; attempt++)
            {
                var started = Start(toolDirectory, service, location, FreePort());
                try
                {
                    await started.WaitUntilReadyAsync(service, isReady, cancellationToken);
                    return started;
                }
                catch (Exception) when (attempt < Attempts && started._process.HasExited && started._output.ToString().Contains("EADDRINUSE", StringComparison.Ordinal))
                {
                    await started.DisposeAsync();
                }
                catch
                {
                    await started.DisposeAsync();
                    throw;
                }
            }
        }

        private static AzuriteProcess Start(string toolDirectory, string service, string location, int port)
        {
            Directory.CreateDirectory(location);
            var script = service == "blob" ? BlobScript(toolDirectory) : Path.Combine(toolDirectory, "node_modules", "azurite", "dist", "src", "table", "main.js");
            var start = new ProcessStartInfo("node") { WorkingDirectory = location, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            string[] arguments =
            [
                script,
                $"--{service}Host", "127.0.0.1",
                $"--{service}Port", port.ToString(CultureInfo.InvariantCulture),
                "--location", location,
                "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
            ];
            foreach (var argument in arguments)
            {
                start.ArgumentList.Add(argument);
            }

            var process = StartProcess(start);
            var output = new BoundedLog();
            process.OutputDataReceived += (_, e) => output.Add(e.Data);
            process.ErrorDataReceived += (_, e) => output.Add(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return new AzuriteProcess(process, output, port);
        }

        private async Task WaitUntilReadyAsync(string service, Func<int, CancellationToken, Task<bool>> isReady, CancellationToken cancellationToken)
        {
            var elapsed = Stopwatch.StartNew();
            Exception? lastError = null;
            while (elapsed.Elapsed < StartTimeout)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (_process.HasExited)
                {
                    // Let the output readers drain what the process printed before it died.
                    await _process.WaitForExitAsync(cancellationToken);
                    throw new InvalidOperationException($"Azurite's {service} service exited with code {_process.ExitCode} before it answered on port {Port}:{Environment.NewLine}{_output}");
                }

                try
                {
                    using var probe = new TcpClient();
                    await probe.ConnectAsync(IPAddress.Loopback, Port, cancellationToken);
                    if (await isReady(Port, cancellationToken))
                    {
                        return;
                    }
                }
                catch (Exception ex) when (ex is SocketException or IOException or HttpRequestException or Azure.RequestFailedException or AggregateException
                    || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
                {
                    lastError = ex;
                }

                // Polling: a starting process offers nothing to await.
                await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
            }

            throw new InvalidOperationException(
                $"Azurite's {service} service did not answer on 127.0.0.1:{Port} within {StartTimeout.TotalSeconds:0} s (last error: {lastError?.Message ?? "none"}). Its output:{Environment.NewLine}{_output}");
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                if (!_process.HasExited)
                {
                    _process.Kill(entireProcessTree: true);
                }

                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await _process.WaitForExitAsync(timeout.Token);
            }
            catch (Exception ex) when (ex is InvalidOperationException or Win32Exception or OperationCanceledException)
            {
                // Already gone, or will be: nothing more can be done from here.
            }
            finally
            {
                _process.Dispose();
            }
        }
    }
}
