using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace StreamGrains.Benchmarks;

/// <summary>Writes one JSON object per line; the last line of a run is the summary.</summary>
internal static class Report
{
    private static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static void Line(IReadOnlyDictionary<string, object?> fields) => Console.WriteLine(JsonSerializer.Serialize(fields, Options));

    public static double Round(double value, int digits = 3) => Math.Round(value, digits);

    public static double PeakWorkingSetMb()
    {
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        return Round(process.PeakWorkingSet64 / 1024.0 / 1024.0, 1);
    }
}

/// <summary>Samples the working set and managed heap while a phase runs.</summary>
internal sealed class MemorySampler : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public MemorySampler(TimeSpan interval) => _loop = SampleAsync(interval);

    public double MaxWorkingSetMb { get; private set; }

    public double MaxManagedHeapMb { get; private set; }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }

    private async Task SampleAsync(TimeSpan interval)
    {
        using var process = Process.GetCurrentProcess();
        using var timer = new PeriodicTimer(interval);
        do
        {
            process.Refresh();
            MaxWorkingSetMb = Math.Max(MaxWorkingSetMb, process.WorkingSet64 / 1024.0 / 1024.0);
            MaxManagedHeapMb = Math.Max(MaxManagedHeapMb, GC.GetTotalMemory(false) / 1024.0 / 1024.0);
        }
        while (await WaitAsync(timer));
    }

    private async Task<bool> WaitAsync(PeriodicTimer timer)
    {
        try
        {
            return await timer.WaitForNextTickAsync(_stop.Token);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
