using System.Diagnostics.CodeAnalysis;

namespace StreamGrains.State;

/// <summary>One value per key. All operations act on the current key.</summary>
public interface IValueState<T>
{
    /// <summary>The current key's value, or the descriptor's default value when there is none.</summary>
    T? Get();

    /// <summary>Gets the current key's value; false when there is none.</summary>
    bool TryGet([MaybeNullWhen(false)] out T value);

    /// <summary>Sets the current key's value.</summary>
    void Update(T value);

    /// <summary>Removes the current key's value.</summary>
    void Clear();
}

/// <summary>A list per key. All operations act on the current key.</summary>
public interface IListState<T>
{
    /// <summary>The current key's elements in insertion order; empty when there are none.</summary>
    IReadOnlyList<T> Get();

    /// <summary>Appends an element.</summary>
    void Add(T value);

    /// <summary>Appends elements in order.</summary>
    void AddAll(IEnumerable<T> values);

    /// <summary>Replaces the current key's elements.</summary>
    void Update(IEnumerable<T> values);

    /// <summary>Removes all of the current key's elements.</summary>
    void Clear();
}

/// <summary>A map per key. All operations act on the current key.</summary>
public interface IMapState<TKey, TValue>
    where TKey : notnull
{
    /// <summary>Gets the value of <paramref name="key"/>; false when absent.</summary>
    bool TryGet(TKey key, [MaybeNullWhen(false)] out TValue value);

    /// <summary>Sets the value of <paramref name="key"/>.</summary>
    void Put(TKey key, TValue value);

    /// <summary>Removes <paramref name="key"/>.</summary>
    void Remove(TKey key);

    /// <summary>Whether <paramref name="key"/> is present.</summary>
    bool ContainsKey(TKey key);

    /// <summary>All entries, ordered by the serialized user key.</summary>
    IReadOnlyList<KeyValuePair<TKey, TValue>> Entries();

    /// <summary>Whether the current key's map is empty.</summary>
    bool IsEmpty();

    /// <summary>Removes all entries of the current key.</summary>
    void Clear();
}

/// <summary>One value per key, folded with the descriptor's reduce function. All operations act on the current key.</summary>
public interface IReducingState<T>
{
    /// <summary>The current key's reduced value, or default when nothing was added.</summary>
    T? Get();

    /// <summary>Gets the current key's reduced value; false when nothing was added.</summary>
    bool TryGet([MaybeNullWhen(false)] out T value);

    /// <summary>Folds <paramref name="value"/> into the current key's value.</summary>
    void Add(T value);

    /// <summary>Removes the current key's value.</summary>
    void Clear();
}

/// <summary>Creates or looks up keyed state of the current operator.</summary>
public interface IKeyedStateStore
{
    /// <summary>The value state described by <paramref name="descriptor"/>.</summary>
    IValueState<T> GetValueState<T>(ValueStateDescriptor<T> descriptor);

    /// <summary>The list state described by <paramref name="descriptor"/>.</summary>
    IListState<T> GetListState<T>(ListStateDescriptor<T> descriptor);

    /// <summary>The map state described by <paramref name="descriptor"/>.</summary>
    IMapState<TKey, TValue> GetMapState<TKey, TValue>(MapStateDescriptor<TKey, TValue> descriptor)
        where TKey : notnull;

    /// <summary>The reducing state described by <paramref name="descriptor"/>.</summary>
    IReducingState<T> GetReducingState<T>(ReducingStateDescriptor<T> descriptor);
}
