using StreamGrains.Grains.Channels;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Tests;

/// <summary>
/// A transport that delivers some batches late (so later ones overtake them) and some twice, with seeded randomness.
/// </summary>
internal sealed class ChaosTransport(IGrainFactory grains) : IBatchTransport
{
    private readonly GrainBatchTransport _inner = new(grains);
    private readonly Random _random = new(20261125);
    private readonly Lock _lock = new();

    public Task Deliver(SubtaskId receiver, DataBatch batch)
    {
        int roll;
        int delayMs;
        lock (_lock)
        {
            roll = _random.Next(100);
            delayMs = 1 + _random.Next(15);
        }

        return roll switch
        {
            < 20 => DeliverLateAsync(receiver, batch, delayMs),
            < 35 => DeliverTwiceAsync(receiver, batch, delayMs),
            _ => _inner.Deliver(receiver, batch),
        };
    }

    public void ReturnCredits(SubtaskId sender, int edgeId, int receiverIndex, int credits) =>
        _inner.ReturnCredits(sender, edgeId, receiverIndex, credits);

    private async Task DeliverLateAsync(SubtaskId receiver, DataBatch batch, int delayMs)
    {
        // Fault injection, not synchronization: the delay lets later batches of the channel overtake this one.
        await Task.Delay(delayMs);
        await _inner.Deliver(receiver, batch);
    }

    private async Task DeliverTwiceAsync(SubtaskId receiver, DataBatch batch, int delayMs)
    {
        await _inner.Deliver(receiver, batch);
        await Task.Delay(delayMs);
        await _inner.Deliver(receiver, batch);
    }
}
