using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace StreamGrains.Grains;

/// <summary>
/// Declares a silo dead as soon as its process is provably gone, instead of waiting for Orleans' membership probes
/// (about 15 s with Orleans' defaults: a probe every 5 s, three missed, two votes). Until the cluster declares a crashed
/// silo dead, it still owns part of the grain directory and is still offered to placement, so new activations, and with
/// them a restart, fail.
/// </summary>
/// <remarks>
/// <para>A check first connects to this silo's own silo port: when that is refused too (the silo is stopping, or the
/// cluster does not use TCP, as Orleans' in-process test cluster), refusals prove nothing and the check ends. Otherwise
/// it opens a TCP connection to the silo port of every other silo that the membership lists as Active. A
/// refused connection (nothing listens on that port) means that silo's process is gone; after a second refused
/// connection it is declared dead (<see cref="IClusterMembershipService.TryKill"/>), as the Kubernetes hosting does for a
/// deleted pod. A silo that is slow, paused or unreachable (a timeout, not a refusal) is left to Orleans' probes, so
/// load never gets a healthy silo declared dead.</para>
/// <para>Checks are cheap and only run when something suggests a crash: a grain call from this silo failed to reach its
/// target (<see cref="CrashedSiloCallFilter"/>), or a job is about to place a restarted attempt
/// (<see cref="SettleAsync"/>). At most one check runs at a time; a request during a check runs one more after it.</para>
/// </remarks>
internal sealed class CrashedSiloDetector(
    IClusterMembershipService membership,
    ILocalSiloDetails localSilo,
    IOptions<StreamGrainsOptions> options,
    ILogger<CrashedSiloDetector> logger)
{
    /// <summary>How long one connection attempt may take before it counts as inconclusive.</summary>
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(1);

    /// <summary>The pause between the first refused connection and the one that confirms it.</summary>
    public static readonly TimeSpan ConfirmDelay = TimeSpan.FromMilliseconds(100);

    private readonly Lock _lock = new();
    private readonly HashSet<SiloAddress> _declaredDead = [];
    private Task<IReadOnlyList<SiloAddress>>? _running;
    private bool _again;

    /// <summary>The cluster's membership as this silo sees it.</summary>
    public IClusterMembershipService Membership => membership;

    /// <summary>Whether this detector declared <paramref name="silo"/> dead (the membership may not show it yet).</summary>
    public bool IsDeclaredDead(SiloAddress silo)
    {
        lock (_lock)
        {
            return _declaredDead.Contains(silo);
        }
    }

    /// <summary>Something suggests a silo crashed: runs a check in the background (or one more after the one running).</summary>
    public void Suspect()
    {
        if (options.Value.DeclareCrashedSilosDead)
        {
            _ = CheckAsync();
        }
    }

    /// <summary>How long <see cref="SettleAsync"/> waits by default.</summary>
    public static readonly TimeSpan DefaultSettleTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Before placing an attempt: checks every other Active silo and, for those it declared dead, waits up to
    /// <paramref name="timeout"/> (<see cref="DefaultSettleTimeout"/>) until this silo's membership no longer lists them as Active (so the grain directory
    /// and placement have moved on). Never throws.
    /// </summary>
    public async Task SettleAsync(TimeSpan? timeout = null)
    {
        var wait = timeout ?? DefaultSettleTimeout;
        if (!options.Value.DeclareCrashedSilosDead)
        {
            return;
        }

        try
        {
            var dead = await CheckAsync().WaitAsync(wait);
            if (dead.Count == 0)
            {
                return;
            }

            // The first snapshot enumerated is the current one.
            using var deadline = new CancellationTokenSource(wait);
            await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(deadline.Token))
            {
                if (!dead.Any(s => snapshot.GetSiloStatus(s) == SiloStatus.Active))
                {
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException)
        {
            logger.LogWarning("The membership did not show the silos declared dead within {Timeout}; placing anyway (they are left out)", wait);
        }
    }

    /// <summary>Runs a check now, or joins the one running and then one more. Returns the silos declared dead by it.</summary>
    public Task<IReadOnlyList<SiloAddress>> CheckAsync()
    {
        lock (_lock)
        {
            if (_running is { IsCompleted: false } running)
            {
                _again = true;
                return running;
            }

            _running = RunChecksAsync();
            return _running;
        }
    }

    private async Task<IReadOnlyList<SiloAddress>> RunChecksAsync()
    {
        // Off the caller's (grain's) scheduler: connections are plain sockets.
        await Task.Yield();
        var dead = new List<SiloAddress>();
        while (true)
        {
            dead.AddRange(await CheckOnceAsync());
            lock (_lock)
            {
                if (!_again)
                {
                    return dead;
                }

                _again = false;
            }
        }
    }

    private async Task<IReadOnlyList<SiloAddress>> CheckOnceAsync()
    {
        var self = localSilo.SiloAddress;
        if (await IsRefusedAsync(self.Endpoint))
        {
            // This silo's own port refuses: it is stopping, or silos do not talk over TCP here (an in-memory transport,
            // as in Orleans' in-process test cluster). Refusals then say nothing about other silos.
            return [];
        }

        var candidates = membership.CurrentSnapshot.Members.Values
            .Where(m => m.Status == SiloStatus.Active && !m.SiloAddress.Equals(self))
            .Select(static m => m.SiloAddress)
            .ToList();
        var refused = await Task.WhenAll(candidates.Select(async silo => (Silo: silo, Gone: await IsGoneAsync(silo.Endpoint))));
        var dead = new List<SiloAddress>();
        foreach (var (silo, _) in refused.Where(static r => r.Gone))
        {
            logger.LogWarning("Silo {Silo} refuses connections on its silo port: its process is gone. Declaring it dead now rather than waiting for the membership probes", silo);
            try
            {
                await membership.TryKill(silo);
                lock (_lock)
                {
                    _declaredDead.Add(silo);
                }

                dead.Add(silo);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                logger.LogWarning(ex, "Declaring silo {Silo} dead failed; the membership probes will", silo);
            }
        }

        return dead;
    }

    /// <summary>Whether two connections to <paramref name="endpoint"/>, <see cref="ConfirmDelay"/> apart, were both refused.</summary>
    private static async Task<bool> IsGoneAsync(IPEndPoint endpoint)
    {
        if (!await IsRefusedAsync(endpoint))
        {
            return false;
        }

        await Task.Delay(ConfirmDelay);
        return await IsRefusedAsync(endpoint);
    }

    /// <summary>Whether a TCP connection to <paramref name="endpoint"/> is refused; false when it is accepted, times out or fails otherwise.</summary>
    internal static async Task<bool> IsRefusedAsync(IPEndPoint endpoint)
    {
        using var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = new CancellationTokenSource(ConnectTimeout);
        try
        {
            await socket.ConnectAsync(endpoint, timeout.Token);
            return false;
        }
        catch (SocketException ex)
        {
            return ex.SocketErrorCode == SocketError.ConnectionRefused;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
