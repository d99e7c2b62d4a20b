using System.Reflection;
using System.Runtime.Loader;
using StreamGrains.Samples;

namespace StreamGrains.Silo;

/// <summary>Loads the assemblies that hold job definitions, so the silo can find job types by name.</summary>
internal static class JobAssemblies
{
    /// <summary>
    /// Loads every assembly in <paramref name="paths"/> (relative paths are resolved against the current directory),
    /// adding a message to <paramref name="errors"/> for each one that cannot be loaded. The samples are always loaded.
    /// </summary>
    public static IReadOnlyList<Assembly> Load(IEnumerable<string> paths, List<string> errors)
    {
        var assemblies = new List<Assembly> { typeof(ClickCounts).Assembly };
        foreach (var path in paths)
        {
            var full = Path.GetFullPath(path);
            if (!File.Exists(full))
            {
                errors.Add($"StreamGrains:JobAssemblies: '{full}' does not exist.");
                continue;
            }

            try
            {
                assemblies.Add(AssemblyLoadContext.Default.LoadFromAssemblyPath(full));
            }
            catch (Exception ex) when (ex is BadImageFormatException or FileLoadException)
            {
                errors.Add($"StreamGrains:JobAssemblies: '{full}' could not be loaded: {ex.Message}");
            }
        }

        return assemblies;
    }
}
