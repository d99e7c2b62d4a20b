using Orleans.Runtime.Messaging;

namespace StreamGrains.Grains;

/// <summary>
/// Asks the <see cref="CrashedSiloDetector"/> for a check whenever a grain call from this silo fails because its target
/// silo could not be reached (a refused or lost connection, a rejected message, an unavailable silo). The call's own
/// outcome is unchanged.
/// </summary>
internal sealed class CrashedSiloCallFilter(CrashedSiloDetector detector) : IOutgoingGrainCallFilter
{
    public async Task Invoke(IOutgoingGrainCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        try
        {
            await context.Invoke();
        }
        catch (Exception ex) when (IsUnreachable(ex))
        {
            detector.Suspect();
            throw;
        }
    }

    /// <summary>Whether <paramref name="exception"/> (or one it wraps) says a silo could not be reached.</summary>
    internal static bool IsUnreachable(Exception? exception)
    {
        for (var depth = 0; exception is not null && depth < 8; depth++, exception = exception.InnerException)
        {
            if (exception is SiloUnavailableException or OrleansMessageRejectionException or ConnectionFailedException)
            {
                return true;
            }
        }

        return false;
    }
}
