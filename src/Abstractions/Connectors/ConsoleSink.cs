namespace StreamGrains.Connectors;

/// <summary>Writes each record as a line to standard output, prefixed with the sink's Uid and subtask index.</summary>
public sealed class ConsoleSink<T> : ISink<T>
{
    private readonly Func<T, string> _format;

    /// <summary>Creates the sink; records are formatted with <paramref name="format"/> or <c>ToString()</c>.</summary>
    public ConsoleSink(Func<T, string>? format = null) => _format = format ?? (static r => r?.ToString() ?? "null");

    /// <summary>Where lines go; standard output by default.</summary>
    public TextWriter? Output { get; init; }

    /// <inheritdoc />
    public ISinkWriter<T> CreateWriter(SinkContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return new Writer(this, $"[{context.OperatorUid}/{context.SubtaskIndex}] ", Output ?? Console.Out);
    }

    private sealed class Writer(ConsoleSink<T> sink, string prefix, TextWriter output) : ISinkWriter<T>
    {
        public void Write(T record) => output.WriteLine(prefix + sink._format(record));

        public ValueTask FlushAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public async ValueTask EndOfInputAsync(CancellationToken cancellationToken) => await output.FlushAsync(cancellationToken);

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
