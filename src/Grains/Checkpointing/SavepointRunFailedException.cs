namespace StreamGrains.Grains.Checkpointing;

/// <summary>
/// The coordinator cannot complete a savepoint it runs; the message says why in words the savepoint's status shows as
/// they are (the client reports it as <c>StreamGrains.Client.SavepointFailedException</c>).
/// </summary>
internal sealed class SavepointRunFailedException(string message) : Exception(message);
