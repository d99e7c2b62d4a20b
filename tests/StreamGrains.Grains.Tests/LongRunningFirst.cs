using Xunit.Abstractions;
using Xunit.Sdk;

[assembly: TestCollectionOrderer("StreamGrains.Grains.Tests.LongRunningFirstOrderer", "StreamGrains.Grains.Tests")]

namespace StreamGrains.Grains.Tests;

/// <summary>Marks the definition of a test collection whose tests take minutes in all, so that it starts first.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class LongRunningAttribute : Attribute;

/// <summary>
/// Starts the collections whose definition is marked <see cref="LongRunningAttribute"/> first, the others after them in
/// xUnit's default order.
/// </summary>
/// <remarks>
/// xunit.runner.json lets two collections run at a time, each to its end (a test class without a <c>[Collection]</c>
/// attribute is a collection of its own). A collection of several minutes that happened to start last would run alone
/// after all the others; started first, the others run beside it meanwhile.
/// </remarks>
public sealed class LongRunningFirstOrderer : ITestCollectionOrderer
{
    private readonly DefaultTestCollectionOrderer _default = new();

    public IEnumerable<ITestCollection> OrderTestCollections(IEnumerable<ITestCollection> testCollections) =>
        _default.OrderTestCollections(testCollections)
            .OrderByDescending(static c => c.CollectionDefinition?.GetCustomAttributes(typeof(LongRunningAttribute)).Any() == true);
}
