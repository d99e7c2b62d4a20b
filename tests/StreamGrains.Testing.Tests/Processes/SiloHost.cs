using System.Reflection;

namespace StreamGrains.Testing.Tests.Processes;

/// <summary>The silo host this repository builds (src/Silo), for the process-level cluster tests.</summary>
internal static class SiloHost
{
    /// <summary>The built <c>StreamGrains.Silo.dll</c> of the same configuration as these tests.</summary>
    public static string Path { get; } = System.IO.Path.GetFullPath(
        typeof(SiloHost).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(static a => a.Key == "SiloHostPath").Value!);
}
