namespace StreamGrains;

/// <summary>
/// A job definition: C# code that builds the dataflow graph from parameters.
/// </summary>
/// <remarks>
/// The silos load the class by name, create it with its parameterless constructor and call <see cref="Build"/> once in
/// the job grain and once in every subtask grain. <see cref="Build"/> must therefore be deterministic: the same
/// parameters must always give the same graph, and functions must not share mutable state between calls.
/// </remarks>
public interface IStreamJob
{
    /// <summary>Builds the graph.</summary>
    void Build(StreamBuilder builder, JobParameters parameters);
}
