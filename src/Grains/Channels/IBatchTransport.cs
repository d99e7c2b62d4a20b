using StreamGrains.Runtime;

namespace StreamGrains.Grains.Channels;

/// <summary>
/// The seam between subtasks: how a batch reaches a receiver and how credits reach a sender.
/// </summary>
/// <remarks>
/// The default sends grain calls. Orleans does not promise that two calls between the same grains arrive in order,
/// nor (under retries and failures) exactly once; the receiving side restores order by sequence number and drops
/// duplicates, so any transport that eventually delivers every batch at least once is correct.
/// </remarks>
public interface IBatchTransport
{
    /// <summary>Delivers <paramref name="batch"/> to <paramref name="receiver"/>; the task faults when it cannot be delivered.</summary>
    Task Deliver(SubtaskId receiver, DataBatch batch);

    /// <summary>Tells <paramref name="sender"/> that <paramref name="credits"/> more batches of its channel (<paramref name="edgeId"/>, <paramref name="receiverIndex"/>) were processed.</summary>
    void ReturnCredits(SubtaskId sender, int edgeId, int receiverIndex, int credits);
}

/// <summary>Sends batches and credits as grain calls.</summary>
internal sealed class GrainBatchTransport(IGrainFactory grains) : IBatchTransport
{
    public Task Deliver(SubtaskId receiver, DataBatch batch) =>
        grains.GetGrain<ISubtaskGrain>(receiver.GrainKey).Deliver(batch);

    public void ReturnCredits(SubtaskId sender, int edgeId, int receiverIndex, int credits) =>
        _ = grains.GetGrain<ISubtaskGrain>(sender.GrainKey).AddCredits(edgeId, receiverIndex, credits);
}
