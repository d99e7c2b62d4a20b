using Orleans.Networking.Shared;
using Orleans.Runtime.Messaging;

namespace StreamGrains.Client;

/// <summary>
/// Runs the client's grain calls, retrying those that failed because the cluster was unreachable for a moment (a silo
/// died and the cluster has not noticed yet, a grain is being re-created on another silo): with exponential back-off,
/// for at most a bounded time, then as a <see cref="ClusterUnavailableException"/>. Other exceptions pass unchanged.
/// </summary>
/// <remarks>
/// The budget counts from the first failure, not from the first try: a try sent through the gateway of a silo that was
/// just killed fails only at Orleans' response timeout (30 s by default, longer than the default budget), and is then
/// still tried again through a live gateway.
/// </remarks>
/// <param name="budget">How long a call may keep failing transiently (from its first failure) before it is given up.</param>
/// <param name="time">The clock of the back-off.</param>
internal sealed class TransientCallRetry(TimeSpan budget, TimeProvider time)
{
    /// <summary>The first back-off; each next one doubles, up to <see cref="MaxDelay"/>.</summary>
    public static readonly TimeSpan InitialDelay = TimeSpan.FromMilliseconds(100);

    /// <summary>The longest back-off between two tries.</summary>
    public static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(2);

    /// <summary>Runs a call that is safe to repeat, retrying transient failures.</summary>
    /// <param name="what">What the call does, for the message of the exception.</param>
    /// <param name="call">The call.</param>
    /// <param name="cancellationToken">Stops the retries.</param>
    public async Task<T> RunAsync<T>(string what, Func<Task<T>> call, CancellationToken cancellationToken)
    {
        long? firstFailure = null;
        var delay = InitialDelay;
        for (var tries = 1; ; tries++)
        {
            try
            {
                return await call();
            }
            catch (Exception ex) when (IsTransient(ex))
            {
                firstFailure ??= time.GetTimestamp();
                var elapsed = time.GetElapsedTime(firstFailure.Value);
                if (elapsed + delay > budget)
                {
                    throw Unavailable(what, ex, tries, elapsed);
                }

                await Task.Delay(delay, time, cancellationToken);
                delay = delay * 2 < MaxDelay ? delay * 2 : MaxDelay;
            }
        }
    }

    /// <summary>Runs a call that must not be repeated (it may have taken effect): a transient failure becomes a <see cref="ClusterUnavailableException"/> at once.</summary>
    public static async Task<T> RunOnceAsync<T>(string what, Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (Exception ex) when (IsTransient(ex))
        {
            throw new ClusterUnavailableException($"{what} failed because the cluster was unreachable ({ex.GetType().Name}: {ex.Message}); it may or may not have taken effect.", ex);
        }
    }

    /// <summary>
    /// Whether <paramref name="exception"/> (or its inner exception) says the cluster was unreachable for a moment:
    /// a message rejected because its target silo is unavailable, a failed connection, a busy gateway, or a response
    /// that did not arrive in time.
    /// </summary>
    public static bool IsTransient(Exception exception) => exception switch
    {
        OrleansMessageRejectionException or ConnectionFailedException or SocketConnectionException or GatewayTooBusyException or ClientNotAvailableException or TimeoutException => true,
        { InnerException: { } inner } when inner != exception => IsTransient(inner),
        _ => false,
    };

    private static ClusterUnavailableException Unavailable(string what, Exception last, int tries, TimeSpan elapsed) =>
        new($"{what} failed: the cluster was unreachable for {elapsed.TotalSeconds:0.0} s ({tries} tries; last error {last.GetType().Name}: {last.Message}). A silo may have failed; try again later.", last);
}
