using System.Collections.Concurrent;
using StreamGrains.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Snapshots;

/// <summary>
/// Downloads of checkpoint files shared by the restores that run at the same time in one silo: when two of them need
/// the same file, the second links the first one's verified download instead of fetching the file again. That is the
/// case of a rescale that splits an old subtask's key groups between two new subtasks on one silo: both need the SSTs
/// spanning both halves (and every level-0 file of the old subtask).
/// </summary>
/// <remarks>
/// A file is offered from the moment its download is claimed until the restore that downloads it has fetched all its
/// files; that restore then waits for the restores already waiting on its files to have linked them before it goes on
/// (and may move or delete them). A restore that comes later fetches the file itself, as does one whose owner's
/// download failed. One instance per silo; thread-safe.
/// </remarks>
public sealed class SharedRestoreDownloads
{
    private readonly ConcurrentDictionary<string, Offer> _offers = new(StringComparer.Ordinal);

    /// <summary>Files offered right now (for tests and diagnostics).</summary>
    public int Offered => _offers.Count;

    /// <summary>
    /// Registers the caller as the one downloading <paramref name="file"/> to <paramref name="target"/>, or returns the
    /// offer of the restore that already does.
    /// </summary>
    internal (Offer Offer, bool Owner) Claim(StateFile file, string target)
    {
        var mine = new Offer(KeyOf(file), target);
        var offer = _offers.GetOrAdd(mine.Key, mine);
        return (offer, ReferenceEquals(offer, mine));
    }

    /// <summary>
    /// Stops offering the files of <paramref name="offers"/> (the owner's restore has fetched all its files, or failed)
    /// and waits until the restores already waiting on them have linked them.
    /// </summary>
    internal async Task WithdrawAsync(IEnumerable<Offer> offers)
    {
        var closing = new List<Task>();
        foreach (var offer in offers)
        {
            _offers.TryRemove(new KeyValuePair<string, Offer>(offer.Key, offer));
            closing.Add(offer.CloseAsync());
        }

        await Task.WhenAll(closing);
    }

    /// <summary>
    /// Waits for another restore's download of the offered file and links it to <paramref name="target"/>; false when
    /// the offer is closed, that download failed or the link failed, so that the caller downloads the file itself.
    /// </summary>
    internal static async Task<bool> TryLinkAsync(Offer offer, string target, CancellationToken cancellationToken)
    {
        if (!offer.TryJoin())
        {
            return false;
        }

        try
        {
            if (!await offer.Downloaded.WaitAsync(cancellationToken))
            {
                return false;
            }

            HardLinks.LinkOrCopy(offer.Path, target);
            return true;
        }
        catch (IOException)
        {
            File.Delete(target);
            return false;
        }
        finally
        {
            offer.Leave();
        }
    }

    /// <summary>Storage path, checksum and length: a file in storage is never rewritten under its name, but the rest costs nothing to add.</summary>
    private static string KeyOf(StateFile file) => $"{file.Path}\n{file.Checksum}\n{file.Length}";

    /// <summary>One file being downloaded by one restore, which others may link once it is complete.</summary>
    internal sealed class Offer(string key, string path)
    {
        private readonly TaskCompletionSource<bool> _downloaded = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Lock _lock = new();
        private int _waiters;
        private bool _closed;

        public string Key { get; } = key;

        /// <summary>Where the owner downloads the file.</summary>
        public string Path { get; } = path;

        /// <summary>True once the file is complete and verified at <see cref="Path"/>; false when the owner failed or closed the offer first.</summary>
        public Task<bool> Downloaded => _downloaded.Task;

        public void Complete() => _downloaded.TrySetResult(true);

        /// <summary>The owner's download failed: waiters fetch the file themselves.</summary>
        public void Fail() => _downloaded.TrySetResult(false);

        /// <summary>Registers a waiter, unless the offer is closed.</summary>
        public bool TryJoin()
        {
            lock (_lock)
            {
                if (_closed)
                {
                    return false;
                }

                _waiters++;
                return true;
            }
        }

        public void Leave()
        {
            lock (_lock)
            {
                if (--_waiters == 0 && _closed)
                {
                    _drained.TrySetResult();
                }
            }
        }

        /// <summary>Takes no more waiters; completes when the registered ones have left.</summary>
        public Task CloseAsync()
        {
            lock (_lock)
            {
                _closed = true;
                if (_waiters == 0)
                {
                    _drained.TrySetResult();
                }
            }

            _downloaded.TrySetResult(false);
            return _drained.Task;
        }
    }
}
