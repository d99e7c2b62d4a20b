using System.Diagnostics;
using StreamGrains.Client;

namespace StreamGrains.Testing.Tests.Processes;

/// <summary>
/// Client calls to a cluster of silo processes while a silo fails: until a killed silo's membership entry is settled,
/// calls may fail with <see cref="ClusterUnavailableException"/> or Orleans' own exceptions; these helpers wait them
/// through, each call on the cluster's current client (a <see cref="SiloProcessCluster.ReconnectAsync"/> replaces it).
/// </summary>
internal static class FailoverWait
{
    /// <summary>How long a wait lasts unless told otherwise.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(3);

    /// <summary>
    /// Waits for a status that satisfies <paramref name="condition"/> (or a terminal one); while a killed silo's
    /// membership entry is still being settled, the client's calls may fail, so these are waited through.
    /// </summary>
    /// <exception cref="TimeoutException">When <paramref name="timeout"/> passes first.</exception>
    public static async Task<JobStatus> UntilAsync(SiloProcessCluster cluster, JobId jobId, Func<JobStatus, bool> condition, TimeSpan? timeout = null)
    {
        var limit = timeout ?? DefaultTimeout;
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                var remaining = limit - deadline.Elapsed;
                return await cluster.Client.WaitForAsync(jobId, condition, remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero);
            }
            catch (Exception ex) when (deadline.Elapsed < limit && IsTransient(ex))
            {
                // Polling: the next call goes to a live gateway or silo.
                await Task.Delay(TimeSpan.FromMilliseconds(200));
            }
        }
    }

    /// <summary>Runs <paramref name="call"/> on the cluster's current client until it returns without a transient failure.</summary>
    /// <exception cref="TimeoutException">When it still failed after <paramref name="timeout"/>.</exception>
    public static async Task<T> CallAsync<T>(SiloProcessCluster cluster, Func<StreamGrainsClient, Task<T>> call, TimeSpan? timeout = null)
    {
        var limit = timeout ?? DefaultTimeout;
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return await call(cluster.Client).WaitAsync(limit);
            }
            catch (Exception ex) when (IsTransient(ex))
            {
                if (deadline.Elapsed >= limit)
                {
                    throw new TimeoutException($"The call still failed after {limit}: {ex.Message}", ex);
                }

                await Task.Delay(TimeSpan.FromMilliseconds(200));
            }
        }
    }

    /// <summary>Whether <paramref name="ex"/> is what a call meets while the cluster settles a failed silo.</summary>
    public static bool IsTransient(Exception ex) =>
        ex is ClusterUnavailableException or OrleansException or TimeoutException { Source: "Orleans.Core" } or Orleans.Runtime.SiloUnavailableException;
}
