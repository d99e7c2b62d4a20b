using System.Diagnostics;
using System.Diagnostics.Metrics;
using StreamGrains.State.Storage;

namespace StreamGrains.Benchmarks.Checkpoints;

/// <summary>
/// Bytes this process wrote to and read from checkpoint storage (every silo of the in-process cluster), from the
/// storage's own counters, sampled every half second so a report can show what was moving when.
/// </summary>
internal sealed class StorageTraffic : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<(double Seconds, long Written, long Read)> _samples = [];
    private readonly Timer _sampler;
    private long _written;
    private long _read;

    public StorageTraffic()
    {
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

    /// <summary>MB written and read in each second from <paramref name="from"/> on (seconds since this object was made).</summary>
    public object[] PerSecondSince(double from, int seconds)
    {
        lock (_samples)
        {
            var rows = new List<object>();
            for (var second = 0; second < seconds; second++)
            {
                var start = At(from + second);
                var end = At(from + second + 1);
                rows.Add(new[] { second, Report.Round((end.Written - start.Written) / 1e6), Report.Round((end.Read - start.Read) / 1e6) });
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
        lock (_samples)
        {
            _samples.Add((_clock.Elapsed.TotalSeconds, written, read));
        }
    }

    private (long Written, long Read) At(double seconds)
    {
        var last = (0L, 0L);
        foreach (var sample in _samples)
        {
            if (sample.Seconds > seconds)
            {
                break;
            }

            last = (sample.Written, sample.Read);
        }

        return last;
    }
}
