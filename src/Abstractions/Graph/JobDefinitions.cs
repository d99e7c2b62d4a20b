using System.Reflection;

namespace StreamGrains.Graph;

/// <summary>Finds job definitions by type name and builds their plans from a <see cref="JobSpec"/>.</summary>
public static class JobDefinitions
{
    /// <summary>Finds the <see cref="IStreamJob"/> type named <paramref name="typeName"/> among the loaded assemblies.</summary>
    /// <exception cref="JobValidationException">When no such type is loaded, or it cannot be used as a job.</exception>
    public static Type ResolveType(string typeName)
    {
        if (string.IsNullOrWhiteSpace(typeName))
        {
            throw new JobValidationException("The job spec has no JobType; set it to the full name of a class implementing IStreamJob.");
        }

        var type = Type.GetType(typeName, throwOnError: false);
        if (type is null)
        {
            var matches = AppDomain.CurrentDomain.GetAssemblies()
                .Where(static a => !a.IsDynamic)
                .Select(a => a.GetType(typeName, throwOnError: false))
                .OfType<Type>()
                .Distinct()
                .ToList();
            if (matches.Count > 1)
            {
                throw new JobValidationException($"Job type '{typeName}' is ambiguous: it is defined in {string.Join(", ", matches.Select(static t => t.Assembly.GetName().Name))}; use the assembly-qualified name.");
            }

            type = matches.SingleOrDefault();
        }

        if (type is null)
        {
            throw new JobValidationException($"Unknown job type '{typeName}': no loaded assembly defines it. Deploy the assembly with the silos (see docs/operations.md) and use the type's full name.");
        }

        if (!typeof(IStreamJob).IsAssignableFrom(type) || type.IsAbstract || type.IsInterface)
        {
            throw new JobValidationException($"Job type '{typeName}' does not implement IStreamJob as a concrete class.");
        }

        if (type.GetConstructor(BindingFlags.Public | BindingFlags.Instance, Type.EmptyTypes) is null)
        {
            throw new JobValidationException($"Job type '{typeName}' has no public parameterless constructor.");
        }

        return type;
    }

    /// <summary>Validates <paramref name="spec"/>, builds the job's graph and plans it.</summary>
    /// <exception cref="JobValidationException">With every problem found.</exception>
    public static JobPlan Plan(JobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var specErrors = spec.Channels.Validate().Concat(spec.Checkpointing.Validate()).Concat(spec.EffectiveRestart.Validate()).ToList();
        if (spec.MaxParallelism < 1 || spec.MaxParallelism > KeyGroups.UpperBound)
        {
            specErrors.Add($"MaxParallelism must be between 1 and {KeyGroups.UpperBound}, was {spec.MaxParallelism}.");
        }

        if (specErrors.Count > 0)
        {
            throw new JobValidationException(specErrors);
        }

        var type = ResolveType(spec.JobType);
        var job = (IStreamJob)Activator.CreateInstance(type)!;
        return Plan(job, spec);
    }

    /// <summary>Builds and plans the graph of <paramref name="job"/> with the settings of <paramref name="spec"/>.</summary>
    /// <exception cref="JobValidationException">With every problem found.</exception>
    public static JobPlan Plan(IStreamJob job, JobSpec spec)
    {
        var builder = new StreamBuilder(spec.MaxParallelism);
        try
        {
            job.Build(builder, spec.Parameters);
        }
        catch (Exception ex) when (ex is not JobValidationException)
        {
            throw new JobValidationException($"Building job '{spec.JobType}' failed: {ex.GetType().Name}: {ex.Message}", ex);
        }

        return JobPlan.Create(builder.Nodes, spec.Parallelism, spec.MaxParallelism);
    }
}
