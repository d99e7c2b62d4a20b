using System.Diagnostics;
using System.Diagnostics.Metrics;
using StreamGrains.State.Storage;

namespace StreamGrains.Benchmarks.Checkpoints;

/// <summary>
/// Bytes this process wrote to and read from checkpoint storage (every silo of the in-process cluster), from the
/// storage's own counters, sampled every half second with the CPU time of this process and of the storage emulator's
/// process (when there is one), so a report can show what was moving when and who was busy.
/// </summary>
internal sealed class StorageTraffic : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<(double Seconds, long Written, long Read, double Cpu, double ServerCpu)> _samples = [];
    private readonly Process _self = Process.GetCurrentProcess();
    private readonly Process? _server;
    private readonly Timer _sampler;
    private long _written;
    private long _read;

    /// <param name="server">The storage emulator's process, whose CPU time is sampled too; null for none.</param>
    public StorageTraffic(Process? server = null)
    {
        _server = server;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == CheckpointStorageMetrics.MeterName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            if (instrument.Name == CheckpointStorageMetrics.BytesWrittenName)
            {
                Interlocked.Add(ref _written, value);
            }
            else if (instrument.Name == CheckpointStorageMetrics.BytesReadName)
            {
                Interlocked.Add(ref _read, value);
            }
        });
        _listener.Start();
        _sampler = new Timer(_ => Sample(), null, TimeSpan.Zero, TimeSpan.FromMilliseconds(500));
    }

    public (long Written, long Read) Now => (Interlocked.Read(ref _written), Interlocked.Read(ref _read));

    /// <summary>
    /// Per second from <paramref name="from"/> on (seconds since this object was made): MB written, MB read, and the CPU
    /// cores this process and the storage emulator used on average in it.
    /// </summary>
    public object[] PerSecondSince(double from, int seconds)
    {
        lock (_samples)
        {
            var rows = new List<object>();
            for (var second = 0; second < seconds; second++)
            {
                var start = At(from + second);
                var end = At(from + second + 1);
                rows.Add(new[]
                {
                    second,
                    Report.Round((end.Written - start.Written) / 1e6),
                    Report.Round((end.Read - start.Read) / 1e6),
                    Report.Round(end.Cpu - start.Cpu),
                    Report.Round(end.ServerCpu - start.ServerCpu),
                });
            }

            return [.. rows];
        }
    }

    public double Elapsed => _clock.Elapsed.TotalSeconds;

    public void Dispose()
    {
        _sampler.Dispose();
        _listener.Dispose();
    }

    private void Sample()
    {
        var (written, read) = Now;
        var cpu = CpuSeconds(_self);
        var serverCpu = _server is null ? 0 : CpuSeconds(_server);
        lock (_samples)
        {
            _samples.Add((_clock.Elapsed.TotalSeconds, written, read, cpu, serverCpu));
        }
    }

    private static double CpuSeconds(Process process)
    {
        try
        {
            process.Refresh();
            return process.TotalProcessorTime.TotalSeconds;
        }
        catch (InvalidOperationException)
        {
            return 0; // exited
        }
    }

    private (long Written, long Read, double Cpu, double ServerCpu) At(double seconds)
    {
        var last = (0L, 0L, 0.0, 0.0);
        foreach (var sample in _samples)
        {
            if (sample.Seconds > seconds)
            {
                break;
            }

            last = (sample.Written, sample.Read, sample.Cpu, sample.ServerCpu);
        }

        return last;
    }
}
