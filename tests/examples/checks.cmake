# One check per example: what its output must say, exactly. Included by
# run_example.cmake, which provides the lines (EX_N, EX_LINE_<i>) and the ex_* helpers.
#
# Rules: assert what the program guarantees (orderings forced by locks, joins, queues
# and sleeps of clearly different lengths, >= 50 ms apart; exactly-once counts; exact
# results). Timings only as lower bounds the program guarantees, or as generous upper
# bounds that show the point of the example (overlapped waits take less than their sum).
# The racy demonstrations (counter_unlocked, account_unlocked, counter_work's first
# line) are checked for form only.

set(EX_URL "https://www\\.cnblogs\\.com/#p")

# --- threading ---------------------------------------------------------------------

function(check_counter_unlocked)
  ex_expect_count("^n的值为: -?[0-9]+$" 1)
endfunction()

function(check_counter_lock)
  ex_expect_lines("0" "second acquire by the owner: BR_EDEADLK (Python would hang here)")
endfunction()

function(check_counter_rlock)
  ex_expect_lines("0" "deepest nesting seen: 2" "release without holding it: BR_EPERM")
endfunction()

function(check_counter_work)
  ex_expect_count("^without lock: [0-9]+ \\(expected 202000000\\)$" 1)
  ex_expect_line("with lock: 202000000 (expected 202000000)")
endfunction()

function(check_account_unlocked)
  ex_expect_count("^t[ab] (取钱成功|取钱失败，余额不足)$" 2)
  ex_expect_count("^final balance -?[0-9]+ \\(with a lock it would be 200\\)$" 1)
endfunction()

function(check_account_lock)
  ex_expect_count("^t[ab] 取钱成功$" 1)
  ex_expect_count("^t[ab] 取钱失败，余额不足$" 1)
  ex_capture(who "^(t[ab]) 取钱成功$")
  ex_expect_line("${who} 余额 200")
  ex_expect_before("^${who} 取钱成功$" "^${who} 余额 200$")
  ex_expect_line("final balance 200")
  ex_expect_nlines(4)
endfunction()

function(check_lock_styles)
  ex_expect_lines("counter = 200000" "positive: yes"
                  "lock held after return from a with block: no")
endfunction()

function(check_lock_print_time)
  ex_expect_count("^开启线程: Thread-1$" 1)
  ex_expect_count("^开启线程: Thread-2$" 1)
  ex_expect_count("^#Thread-[12]: " 6)
  ex_grep(stamps "^#Thread-[12]: ")
  # The lock: one thread's three lines, then the other's three.
  set(names "")
  foreach(i IN LISTS stamps)
    string(REGEX MATCH "^#(Thread-[12]): " _ "${EX_LINE_${i}}")
    list(APPEND names ${CMAKE_MATCH_1})
  endforeach()
  list(GET names 0 a)
  list(GET names 3 b)
  if(a STREQUAL b OR NOT "${names}" STREQUAL "${a};${a};${a};${b};${b};${b}")
    ex_fail("the '#Thread-N' lines interleave: ${names}")
  endif()
  ex_expect_line_at(-1 "退出主线程")
endfunction()

function(check_cond_poem)
  ex_expect_lines(
    "天猫精灵 : 小爱同学" "小爱 : 在"
    "天猫精灵 : 我们来对古诗吧" "小爱 : 好啊"
    "天猫精灵 : 我住长江头" "小爱 : 君住长江尾"
    "天猫精灵 : 日日思君不见君" "小爱 : 共饮长江水"
    "天猫精灵 : 此水几时休" "小爱 : 此恨何时已"
    "天猫精灵 : 只愿君心似我心" "小爱 : 定不负相思意")
endfunction()

function(check_sem_downloads)
  ex_expect_each_once("^start https://baidu\\.com/([0-9]+) \\([1-3] running\\)$" 0 9)
  ex_expect_count("^start " 10)
  ex_expect_each_once("^success https://baidu\\.com/([0-9]+)$" 0 9)
  ex_expect_line_at(-1 "max concurrent downloads: 3")
endfunction()

function(check_thread_args)
  ex_expect_count("^do_craw\\(100, 200\\) in thread Thread-[0-9]+$" 1)
  ex_expect_line("joined: BR_OK")
endfunction()

function(check_thread_target)
  ex_expect_count("^${EX_URL}1 [1-9][0-9]*$" 1)
  ex_expect_seconds("^cost ([0-9.]+)s$" 50 inf)
endfunction()

function(check_thread_subclass)
  ex_expect_count("^${EX_URL}1 [1-9][0-9]*$" 1)
  ex_expect_seconds("^([0-9.]+)$" 50 inf)
endfunction()

function(check_thread_names)
  ex_expect_line("get detail html started (thread get_detail_html)")
  ex_expect_line("get detail url started (thread get_detail_url)")
  ex_expect_line("names: get_detail_html, get_detail_url")
  ex_expect_before("^get detail html end$" "^get detail url end$")
  ex_expect_before("^get detail url end$" "^last time: ")
  # Joined: at least the longer sleep (0.8 s). Run together: both started before either
  # ended (the order says so; no upper time limit, which a loaded machine could break).
  ex_expect_before("started \\(thread get_detail_url\\)" "^get detail html end$")
  ex_expect_before("started \\(thread get_detail_html\\)" "^get detail url end$")
  ex_expect_seconds("^last time: ([0-9.]+)$" 800 inf)
endfunction()

# eat_drink: 0.5 s sleeps (eat sleeps 1 s in mixed mode).
function(check_eat_drink_plain)
  ex_expect_line("start eat (thread eat)")
  ex_expect_line("start drink (thread drink)")
  ex_expect_line("eat daemon: no, drink daemon: no")
  ex_expect_seconds("^last time: ([0-9.]+)$" 0 inf)
  # main returned first; exit() then waited for both non-daemon threads.
  ex_expect_before("^main returns$" "^end (eat|drink)$")
  ex_expect_count("^end eat$" 1)
  ex_expect_count("^end drink$" 1)
endfunction()

function(check_eat_drink_daemon)
  ex_expect_line("eat daemon: yes, drink daemon: yes")
  ex_expect_line("main returns")
  ex_expect_no_line("^end ")
endfunction()

function(check_eat_drink_join)
  ex_expect_line("eat daemon: no, drink daemon: no")
  ex_expect_before("^end (eat|drink)$" "^last time: ")
  ex_expect_count("^end eat$" 1)
  ex_expect_count("^end drink$" 1)
  ex_expect_seconds("^last time: ([0-9.]+)$" 500 inf)
  ex_expect_line_at(-1 "main returns")
endfunction()

function(check_eat_drink_mixed)
  ex_expect_line("eat daemon: yes, drink daemon: no")
  ex_expect_before("^main returns$" "^end drink$")
  ex_expect_count("^end drink$" 1)
  ex_expect_no_line("^end eat$")
endfunction()

# --- queue -----------------------------------------------------------------------------

function(check_pc_crawl_n nparsers)
  math(EXPR top "${nparsers} - 1")
  ex_expect_each_once("^craw[0-2] craw ${EX_URL}([0-9]+) url_queue\\.size= [0-9]+$" 1 50)
  ex_expect_count("^craw" 50)
  ex_expect_each_once(
    "^parse[0-${top}] parsed page-([0-9][0-9]) result\\.size 20 html_queue\\.size= [0-9]+$" 1 50)
  ex_expect_count("^parse" 50)
  ex_expect_distinct("^\\('https://www\\.cnblogs\\.com/p/[0-9][0-9]-[0-9][0-9]', '第[0-9]+页 第[0-9]+篇'\\)$" 1000)
  ex_expect_count("^\\(" 1000)
  ex_expect_line_at(-1 "pages parsed exactly once: 50 of 50 (missing 0, repeated 0)")
endfunction()

function(check_pc_crawl)
  check_pc_crawl_n(2)
endfunction()

function(check_pc_crawl_3parsers)
  check_pc_crawl_n(3)
endfunction()

function(check_queue_join)
  ex_expect_each_once("^get detail html started http://projectsedu\\.com/([0-9]+)$" 0 19)
  ex_expect_each_once("^get detail html end http://projectsedu\\.com/([0-9]+)$" 0 19)
  ex_expect_line("get detail url started")
  ex_expect_line("get detail url end")
  # join() returns only after the 20th task_done(), which follows its "end" line.
  ex_expect_before("^get detail html end " "^q\\.join\\(\\) returned")
  ex_expect_count("^q\\.join\\(\\) returned: every url got its task_done\\(\\), after [0-9.]+ s$" 1)
  ex_expect_count("^last time: " 1)
endfunction()

function(check_shared_list)
  ex_expect_each_once("^get detail html started http://projectsedu\\.com/([0-9]+)$" 0 19)
  ex_expect_each_once("^get detail html end http://projectsedu\\.com/([0-9]+)$" 0 19)
  ex_expect_line_at(-1 "all 20 urls taken, list empty: yes")
endfunction()

function(check_prio_workers)
  ex_grep(work " processing ")
  set(items "")
  foreach(i IN LISTS work)
    if(NOT EX_LINE_${i} MATCHES "^Thread-[123] processing ([A-Z]+)$")
      ex_fail("unexpected line '${EX_LINE_${i}}'")
    endif()
    list(APPEND items ${CMAKE_MATCH_1})
  endforeach()
  if(NOT "${items}" STREQUAL "ONE;TWO;THREE;FOUR;FIVE")
    ex_fail("expected ONE..FIVE in priority order, got ${items}")
  endif()
  foreach(n 1 2 3)
    ex_expect_count("^开启线程: Thread-${n}$" 1)
    ex_expect_count("^退出线程: Thread-${n}$" 1)
  endforeach()
  ex_expect_line_at(-1 "主线程退出")
endfunction()

function(check_crawl_threads_ex line_regex)
  ex_index(b "^single thread begin$")
  ex_index(e "^single thread end$")
  ex_index(mb "^multi thread begin$")
  ex_index(me "^multi thread end$")
  if(b LESS 0 OR e LESS 0 OR mb LESS 0 OR me LESS 0 OR NOT (b LESS e AND e LESS mb AND mb LESS me))
    ex_fail("expected single begin/end, then multi begin/end")
  endif()
  # One thread: the pages in order.
  set(k 1)
  math(EXPR i "${b} + 1")
  while(i LESS e)
    string(REPLACE "N" "${k}" want "${line_regex}")
    if(NOT EX_LINE_${i} MATCHES "${want}")
      ex_fail("line ${i}: '${EX_LINE_${i}}' is not page ${k} in order")
    endif()
    math(EXPR i "${i} + 1")
    math(EXPR k "${k} + 1")
  endwhile()
  if(NOT k EQUAL 51)
    ex_fail("single thread crawled ${k} - 1 pages, not 50")
  endif()
  string(REPLACE "N" "([0-9]+)" each "${line_regex}")
  ex_grep(all "${each}")
  list(LENGTH all n)
  if(NOT n EQUAL 100)
    ex_fail("expected 100 page lines (50 + 50), got ${n}")
  endif()
  # Times: only the bound the sleeps guarantee (a busy machine can make the threads
  # slower than one thread); that the threads overlapped is the in-flight count.
  ex_capture(single "^single thread cost: ([0-9.]+) seconds$")
  ex_capture(multi "^multi thread cost: ([0-9.]+) seconds$")
  ex_ms(single_ms ${single})
  ex_ms(multi_ms ${multi})
  if(single_ms LESS 1000 OR multi_ms LESS 20)
    ex_fail("expected single >= 1 s (50 x 20 ms), multi >= 20 ms: ${single} vs ${multi}")
  endif()
  ex_capture(most "^fetches in flight at once, at most: ([0-9]+)$")
  if(most LESS 2 OR most GREATER 50)
    ex_fail("expected the 50 threads' fetches to overlap (2..50 at once), got ${most}")
  endif()
  ex_expect_line_at(-1 "fetches in flight at once, at most: ${most}")
endfunction()

function(check_crawl_threads)
  check_crawl_threads_ex("^${EX_URL}N [1-9][0-9]*$")
endfunction()

function(check_crawl_threads_004)
  check_crawl_threads_ex("^200 [1-9][0-9]* ${EX_URL}N$")
endfunction()

# --- thread pool -----------------------------------------------------------------------

function(check_pool_done)
  ex_expect_line_at(0 "False")
  ex_expect_before("^use 2 to success$" "^True$")
  ex_expect_line("use 1 to success")
  ex_expect_line_at(-1 "运行的时间是2秒")
  ex_expect_nlines(5)
endfunction()

# get_html(3, 4, 9, 7) on 2 workers. Tasks submitted from outside a pool start in
# submission order, in braid as in Python's single work queue: 3 and 4 first, then 9 in
# 3's place and 7 in 4's, so on a quiet machine they finish 3, 4, 7, 9 (at 3, 4, 11 and
# 12 units of 80 ms). What holds however the machine is loaded: the first to finish is
# 3 or 4 (9 and 7 can't start before one of them ends), each task prints "use N" once,
# and as_completed yields each result after its task printed it, in the same order.
function(ex_expect_completion_order)
  set(prefix_use "use ")
  set(prefix_result "我运行的时间是")
  foreach(kind use result)
    set(prefix "${prefix_${kind}}")
    ex_grep(hits "^${prefix}[0-9]")
    set(order_${kind} "")
    foreach(i IN LISTS hits)
      string(REGEX MATCH "^${prefix}([0-9])" _ "${EX_LINE_${i}}")
      list(APPEND order_${kind} ${CMAKE_MATCH_1})
    endforeach()
    set(sorted ${order_${kind}})
    list(SORT sorted)
    if(NOT sorted STREQUAL "3;4;7;9")
      ex_fail("'${prefix}' lines: expected 3, 4, 7 and 9 once each, got ${order_${kind}}")
    endif()
    list(GET order_${kind} 0 first)
    if(NOT first MATCHES "^[34]$")
      ex_fail("'${prefix}' lines: 3 or 4 must finish first, got ${order_${kind}}")
    endif()
  endforeach()
  if(NOT order_use STREQUAL order_result)
    ex_fail("results came in ${order_result}, the tasks finished in ${order_use}")
  endif()
  foreach(n 3 4 7 9)
    ex_expect_before("^use ${n} to success$" "^我运行的时间是${n}秒$")
  endforeach()
endfunction()

function(check_pool_as_completed)
  ex_expect_completion_order()
  ex_expect_nlines(8)
endfunction()

function(check_pool_map)
  ex_expect_subsequence("^我运行的时间是" "我运行的时间是3秒" "我运行的时间是4秒"
                        "我运行的时间是9秒" "我运行的时间是7秒")
  # The tasks start in submission order (the map submits all four at once): 3 or 4
  # finishes first (3, 4, 7, 9 on a quiet machine, as in Python), each once.
  foreach(n 3 4 7 9)
    ex_expect_count("^use ${n} to success$" 1)
  endforeach()
  ex_expect_count("^use " 4)
  ex_index(first_use "^use [34] to success$")
  ex_index(any_use "^use ")
  if(NOT first_use EQUAL any_use)
    ex_fail("3 or 4 must finish first")
  endif()
endfunction()

function(check_pool_wait_first)
  ex_index(m "^main$")
  if(m LESS 0)
    ex_fail("no 'main' line")
  endif()
  # wait(FIRST_COMPLETED) returned once a task had finished: 3 (at 3 units; 4 ends a unit
  # later, so on a quiet machine the set is {3}: "done: 1"). However loaded the machine,
  # a task had finished, it was 3 or 4 (7 and 9 start only after one of them ends and
  # take 7 and 9 units), and the sets cover all four.
  if(m LESS 1 OR m GREATER 2)
    ex_fail("expected 1 or 2 'use' lines before 'main', got ${m}")
  endif()
  math(EXPR last "${m} - 1")
  foreach(i RANGE 0 ${last})
    if(NOT EX_LINE_${i} MATCHES "^use [34] to success$")
      ex_fail("before 'main': '${EX_LINE_${i}}', expected use 3 or use 4")
    endif()
  endforeach()
  ex_expect_count("^\\(done: [12], not done: [23]\\)$" 1)
  ex_capture(ndone "^\\(done: ([12]),")
  ex_capture(nnot "not done: ([23])\\)$")
  math(EXPR total "${ndone} + ${nnot}")
  if(NOT total EQUAL 4)
    ex_fail("done + not done = ${total}, expected 4")
  endif()
  ex_expect_before("^main$" "^我运行的时间是")
  ex_expect_completion_order()
endfunction()

function(check_pool_fib)
  set(want 75025 121393 196418 317811 514229 832040 1346269 2178309 3524578 5702887)
  set(n 25)
  foreach(v IN LISTS want)
    ex_expect_count("^fib\\(${n}\\) = ${v}$" 1)
    math(EXPR n "${n} + 1")
  endforeach()
  ex_expect_count("^fib" 10)
  ex_expect_line("sum = 14808959")
  ex_expect_count("^多线程用时:[0-9.]+$" 1)
endfunction()

function(check_pool_sleep)
  ex_expect_line("results: 30 of 30")
  # 30 sleeps of 40 ms on 3 workers: never under 10 rounds; they overlapped (2 or 3 at
  # once), and never more than the 3 workers.
  ex_expect_seconds("^多线程用时 :([0-9.]+)$" 400 inf)
  ex_expect_count("^tasks sleeping at once: at most [23]$" 1)
endfunction()

function(check_pool_get_data)
  ex_expect_count("^get data 1 success$" 2)
  ex_expect_count("^get data 2 success$" 3)
  ex_expect_count("^get data 3 success$" 3)
  ex_expect_count("^get None data$" 3)
  ex_expect_nlines(11)
endfunction()

function(check_pool_future_print)
  ex_expect_count("^<Future at 0x[0-9a-f]+ state=(pending|running|finished)>$" 5)
  ex_expect_count("^1$" 5)
  ex_expect_count("^result 123$" 5)
  ex_expect_before("^<Future " "^result ")
endfunction()

function(check_web_fanout)
  ex_expect_line("{\"result_file\": \"file result\", \"result_db\": \"db result\", \"result_api\": \"api result\"}")
  ex_expect_count("^index\\(\\) took [0-9.]+ s; the reads take 0\\.2 \\+ 0\\.4 \\+ 0\\.6 = 1\\.200 s one after another$" 1)
  # At least the longest read (0.6 s); the reads overlapped (2 or 3 at once), which is
  # why it takes about the longest, not the sum (1.2 s). No upper time limit.
  ex_expect_seconds("^index\\(\\) took ([0-9.]+) s" 600 inf)
  ex_expect_count("^reads running at once: at most [23]$" 1)
endfunction()

function(check_primes_map)
  ex_expect_subsequence(" is prime: "
    "112272535095293 is prime: True" "112582705942171 is prime: True"
    "112272535095293 is prime: True" "115280095190773 is prime: True"
    "115797848077099 is prime: True" "1099726899285419 is prime: False"
    "1 is prime: False" "2 is prime: True" "9 is prime: False" "97 is prime: True"
    "2147483649 is prime: False" "999999999991 is prime: False")
  ex_expect_line("single thread and thread pool agree on 12 of 12")
  ex_expect_count("^single thread, cost: [0-9.]+ seconds$" 1)
  ex_expect_count("^multi thread, cost: [0-9.]+ seconds$" 1)
endfunction()

function(check_pool_crawl)
  # map: the pages in input order.
  foreach(k RANGE 1 50)
    math(EXPR i "${k} - 1")
    ex_line(line ${i})
    if(NOT line MATCHES "^${EX_URL}${k} [1-9][0-9]*$")
      ex_fail("line ${i}: '${line}' is not page ${k} in order")
    endif()
  endforeach()
  ex_expect_line_at(50 "craw over")
  # as_completed: each page once, parsed right.
  ex_expect_each_once("^${EX_URL}([0-9]+) 20 links, first \\('https://www\\.cnblogs\\.com/p/[0-9][0-9]-01', '第[0-9]+页 第1篇'\\)$" 1 50)
  ex_expect_nlines(101)
endfunction()

function(check_spider_pool)
  ex_expect_line_at(0 "title,summary,avatar,author")
  ex_expect_distinct("^第([0-9]+)页文章[0-9]+,摘要[0-9]+-[0-9]+,https://pic\\.cnblogs\\.com/avatar/[0-9]+-[0-9]+\\.png,作者[0-9]+$" 200)
  foreach(page RANGE 1 10)
    ex_expect_count("^第${page}页文章" 20)
  endforeach()
  ex_line(last -1)
  if(NOT last MATCHES "^消耗时间： [0-9.]+$")
    ex_fail("expected the time taken last, after shutdown(wait=True)")
  endif()
endfunction()

function(check_cheatsheet_threads)
  ex_expect_lines("thread: func(100) = 200" "queue: got item" "lock: held inside with: yes"
                  "map: 2 4 6" "submit: result 2")
endfunction()

# --- the braid program -------------------------------------------------------------------

function(check_help)
  ex_expect_count("^usage: braid <command> " 1)
  ex_expect_count("^  compare +run the tutorials' CPU-bound experiment" 1)
endfunction()

function(check_unknown_command)
  if(NOT EX_ERR MATCHES "braid: no command 'frobnicate'")
    ex_fail("expected \"no command 'frobnicate'\" on stderr")
  endif()
endfunction()

# The models `braid compare` must show, in order: workload, model label, variant.
set(EX_COMPARE_ROWS
  "W1|one thread|single" "W1|braid threads|threads" "W1|thread pool, map|thread"
  "W1|braid processes|processes" "W1|process pool, map|process"
  "W2|one thread|serial" "W2|thread pool(3)|thread" "W2|process pool(3)|process")
# Then the I/O-bound rows (their own table, after the verdict; in --json after the others).
set(EX_COMPARE_IO_ROWS "thread per task|threads" "thread pool|thread" "coroutines|coroutines")

# braid compare --quick: a well-formed table, every row ran, every result correct; the
# machine line (CPU model, CPUs, load) and each row's median and spread over its rounds.
# A row may carry a noise flag (an efficiency above 1 on a busy machine): it is stripped
# before the row is read.
function(check_compare_quick)
  ex_expect_count("^braid compare: CPU-bound work under each model, on this machine \\(--quick: small sizes\\)$" 1)
  # 3 rounds by default; the sanitizer builds pass --rounds 1 (tests.cmake).
  set(rounds_re "3 rounds")
  if(ARGS MATCHES "--rounds,1")
    set(rounds_re "1 round")
  endif()
  ex_expect_count("^machine: .+, [0-9]+ CPUs?, (load average [0-9.]+ at start, [0-9.]+ at end|load average unknown); ${rounds_re}, rows interleaved; figures are medians, spread min\\.\\.max$" 1)
  ex_capture(cpus "^machine: .+, ([0-9]+) CPUs?, ")
  ex_expect_count("^workload +model +workers +seconds +spread +speed-up +efficiency +results$" 1)
  # CMake regexes have at most 9 groups: the title and the model are group 2 together.
  set(row_re "^(W[0-9]+) (.*[^ ]) +([0-9]+) +([0-9]+\\.[0-9][0-9][0-9]) +[0-9]+\\.[0-9][0-9][0-9]\\.\\.[0-9]+\\.[0-9][0-9][0-9] +([0-9]+\\.[0-9][0-9])x +([0-9]+\\.[0-9][0-9]) +([0-9]+)/([0-9]+) (ok|WRONG)$")
  ex_grep(rows "^W[12] ")
  list(LENGTH rows n)
  list(LENGTH EX_COMPARE_ROWS want)
  if(NOT n EQUAL want)
    ex_fail("expected ${want} rows, got ${n}")
  endif()
  set(i 0)
  foreach(r IN LISTS rows)
    set(row "${EX_LINE_${r}}")
    string(REGEX REPLACE "  noise: efficiency [0-9.]+ > 1 on [0-9]+ CPUs?$" "" row "${row}")
    list(GET EX_COMPARE_ROWS ${i} spec)
    string(REPLACE "|" ";" spec "${spec}")
    list(GET spec 0 wl)
    list(GET spec 1 label)
    if(NOT row MATCHES "${row_re}")
      ex_fail("row ${i} is malformed (or failed): '${row}'")
    endif()
    set(workload ${CMAKE_MATCH_1})
    set(title_model "${CMAKE_MATCH_2}")
    set(workers ${CMAKE_MATCH_3})
    set(seconds ${CMAKE_MATCH_4})
    set(speedup ${CMAKE_MATCH_5})
    set(eff ${CMAKE_MATCH_6})
    set(correct ${CMAKE_MATCH_7})
    set(total ${CMAKE_MATCH_8})
    set(verdict ${CMAKE_MATCH_9})
    # The model column ends group 2, after at least two spaces.
    string(LENGTH "  ${label}" ll)
    string(LENGTH "${title_model}" tl)
    set(tail "")
    if(tl GREATER ll)
      math(EXPR off "${tl} - ${ll}")
      string(SUBSTRING "${title_model}" ${off} -1 tail)
    endif()
    if(NOT workload STREQUAL wl OR NOT tail STREQUAL "  ${label}")
      ex_fail("row ${i}: expected ${wl} '${label}', got '${row}'")
    endif()
    if(NOT verdict STREQUAL "ok" OR NOT correct EQUAL total OR total EQUAL 0)
      ex_fail("row ${i}: results not all correct: '${row}'")
    endif()
    if(wl STREQUAL "W1" AND NOT total EQUAL 8)
      ex_fail("row ${i}: --quick runs is_prime 8 times, got ${total}")
    endif()
    if(wl STREQUAL "W2" AND NOT total EQUAL 10)
      ex_fail("row ${i}: fib 20..29 is 10 results, got ${total}")
    endif()
    ex_fixed(sec_us "${seconds}" 3)
    if(sec_us LESS 0)
      ex_fail("row ${i}: negative time")
    endif()
    if(label STREQUAL "one thread")
      if(NOT workers EQUAL 1 OR NOT speedup STREQUAL "1.00" OR NOT eff STREQUAL "1.00")
        ex_fail("row ${i}: a baseline row has 1 worker, 1.00x and 1.00: '${row}'")
      endif()
    endif()
    if(label STREQUAL "braid threads" AND NOT workers EQUAL cpus)
      ex_fail("row ${i}: expected ${cpus} threads (one per CPU), got ${workers}")
    endif()
    if(label STREQUAL "braid processes" AND NOT workers EQUAL cpus)
      ex_fail("row ${i}: expected ${cpus} processes (one per CPU), got ${workers}")
    endif()
    if(label STREQUAL "process pool, map" AND NOT workers EQUAL cpus)
      ex_fail("row ${i}: the process pool's default is one worker per CPU (${cpus}), got ${workers}")
    endif()
    if((label STREQUAL "thread pool(3)" OR label STREQUAL "process pool(3)") AND NOT workers EQUAL 3)
      ex_fail("row ${i}: expected 3 workers, got ${workers}")
    endif()
    math(EXPR i "${i} + 1")
  endforeach()
  ex_expect_count("^speed-up: median against the median of the workload's one-thread row .*; efficiency: speed-up / min\\(workers, [0-9]+ CPUs?\\); above 1 is not physical and is flagged as noise, left out of the verdict$" 1)
  ex_expect_count("^verdict: .+\\.$" 1)
  # The I/O-bound table: each model once, every wait counted (1,000 with --quick).
  ex_grep(io_headers "^workload +model +workers +seconds +spread +memory +results$")
  if(NOT io_headers)
    ex_fail("no I/O-bound table")
  endif()
  foreach(spec IN LISTS EX_COMPARE_IO_ROWS)
    string(REPLACE "|" ";" spec "${spec}")
    list(GET spec 0 label)
    ex_expect_count("^IO 1000 x 100 ms +${label} +[0-9]+ +[0-9]+\\.[0-9][0-9][0-9] +[0-9]+\\.[0-9][0-9][0-9]\\.\\.[0-9]+\\.[0-9][0-9][0-9] +-?[0-9]+\\.[0-9] MiB  1000/1000 ok(  noise: .*)?$" 1)
  endforeach()
  ex_expect_count("^verdict, I/O-bound: .+\\.$" 1)
  # The crawl: every model once, all 1,000 links of the fixture's 50 pages, when built.
  ex_grep(w9 "^The crawl \\(W9\\): the fixture's 50 pages at \\+10 ms each")
  if(w9)
    foreach(label serial threads pipeline "thread pool" "process pool" coroutines)
      ex_expect_count("^W9 50 pages \\+10ms +${label} +[0-9]+ +[0-9]+\\.[0-9][0-9][0-9] +[0-9.]+\\.\\.[0-9.]+ +-?[0-9]+\\.[0-9] MiB  1000/1000 ok(  noise: .*)?$" 1)
    endforeach()
    ex_expect_count("^verdict, crawl: .+\\.$" 1)
  else()
    ex_expect_count("^The crawl \\(W9\\): not in this build \\(it needs the http layer\\)$" 1)
  endif()
endfunction()

# braid compare --quick --json: one object per row, in BENCH.md's format, whose numbers
# agree with each other; then the verdict.
function(check_compare_quick_json)
  list(LENGTH EX_COMPARE_ROWS want)
  # the sanitizer trees run `--only cpu` (tests.cmake): no IO rows, no I/O verdict
  set(io_rows "${EX_COMPARE_IO_ROWS}")
  if(ARGS MATCHES "--only,cpu")
    set(io_rows "")
  endif()
  list(LENGTH io_rows nio)
  ex_grep(w9 "\"workload\": \"W9\"")
  list(LENGTH w9 nw9)
  math(EXPR nlines "${want} + ${nio} + ${nw9} + 1")
  ex_expect_nlines(${nlines})
  set(base_value 0)
  set(i 0)
  foreach(spec IN LISTS EX_COMPARE_ROWS)
    set(line "${EX_LINE_${i}}")
    string(REPLACE "|" ";" spec "${spec}")
    list(GET spec 0 wl)
    list(GET spec 1 label)
    list(GET spec 2 variant)
    foreach(key workload variant impl model metric value unit workers speedup efficiency
                correct total ok error cpus quick)
      string(JSON v ERROR_VARIABLE jerr GET "${line}" ${key})
      if(jerr)
        ex_fail("line ${i}: no '${key}': ${jerr}")
      endif()
      set(j_${key} "${v}")
    endforeach()
    if(NOT j_workload STREQUAL wl OR NOT j_variant STREQUAL variant OR NOT j_model STREQUAL label
       OR NOT j_impl STREQUAL "braid" OR NOT j_metric STREQUAL "seconds" OR NOT j_unit STREQUAL "s")
      ex_fail("line ${i}: expected ${wl}/${variant} '${label}' in seconds: ${line}")
    endif()
    if(NOT j_ok STREQUAL "ON" OR NOT j_error STREQUAL "" OR NOT j_correct EQUAL j_total
       OR NOT j_quick STREQUAL "ON")
      ex_fail("line ${i}: expected ok, no error, all correct, quick: ${line}")
    endif()
    # speedup = baseline seconds / seconds; efficiency = speedup / min(workers, cpus).
    # Fixed point (1e-4 s, 1e-3), with room for the printed rounding.
    ex_fixed(value "${j_value}" 4)
    ex_fixed(speedup "${j_speedup}" 3)
    ex_fixed(eff "${j_efficiency}" 3)
    if(label STREQUAL "one thread")
      set(base_value ${value})
      if(NOT speedup EQUAL 1000 OR NOT eff EQUAL 1000)
        ex_fail("line ${i}: a baseline has speedup and efficiency 1: ${line}")
      endif()
    elseif(value GREATER 0)
      math(EXPR lhs "${speedup} * ${value}")
      math(EXPR rhs "1000 * ${base_value}")
      math(EXPR diff "${lhs} - ${rhs}")
      math(EXPR tol "${rhs} / 50 + ${speedup} + 1000")
      if(diff GREATER tol OR diff LESS -${tol})
        ex_fail("line ${i}: speedup ${j_speedup} != ${base_value} / ${value} (x 1e-4 s)")
      endif()
      set(used ${j_workers})
      if(used GREATER j_cpus)
        set(used ${j_cpus})
      endif()
      # string(JSON) hands numbers back through a double (0.692 -> 0.69199...), and
      # ex_fixed truncates: allow a few units of the last digit.
      math(EXPR diff "${eff} * ${used} - ${speedup}")
      math(EXPR tol "3 * ${used} + 2")
      if(diff GREATER tol OR diff LESS -${tol})
        ex_fail("line ${i}: efficiency ${j_efficiency} != ${j_speedup} / ${used}")
      endif()
    endif()
    math(EXPR i "${i} + 1")
  endforeach()
  foreach(spec IN LISTS io_rows)
    string(REPLACE "|" ";" spec "${spec}")
    list(GET spec 1 variant)
    set(line "${EX_LINE_${i}}")
    string(JSON wl ERROR_VARIABLE jerr GET "${line}" workload)
    string(JSON v ERROR_VARIABLE jerr2 GET "${line}" variant)
    string(JSON ok ERROR_VARIABLE jerr3 GET "${line}" ok)
    string(JSON correct ERROR_VARIABLE jerr4 GET "${line}" correct)
    string(JSON mem ERROR_VARIABLE jerr5 GET "${line}" memory_mib)
    if(jerr OR jerr2 OR jerr3 OR jerr4 OR jerr5 OR NOT wl STREQUAL "IO" OR NOT v STREQUAL variant
       OR NOT ok STREQUAL "ON" OR NOT correct EQUAL 1000)
      ex_fail("line ${i}: expected IO/${variant}, ok, 1000 waits and memory_mib: ${line}")
    endif()
    math(EXPR i "${i} + 1")
  endforeach()
  # then the crawl's rows, when built
  while(TRUE)
    string(JSON wl ERROR_VARIABLE jerr GET "${EX_LINE_${i}}" workload)
    if(jerr OR NOT wl STREQUAL "W9")
      break()
    endif()
    math(EXPR i "${i} + 1")
  endwhile()
  set(last "${EX_LINE_${i}}")
  string(JSON verdict ERROR_VARIABLE jerr GET "${last}" verdict)
  string(JSON ok ERROR_VARIABLE jerr2 GET "${last}" ok)
  if(jerr OR jerr2 OR verdict STREQUAL "" OR NOT ok STREQUAL "ON")
    ex_fail("expected a last line with a verdict and \"ok\": true")
  endif()
endfunction()

# --- subprocess ----------------------------------------------------------------------

function(check_subprocess_capture)
  ex_expect_lines("echo: returncode 0, stdout 'hello from a child', stderr 0 bytes"
                  "sort (pid known):" "apple" "fig" "pear" "sort: returncode 0" "sh: 42")
endfunction()

function(check_subprocess_fail)
  ex_expect_lines(
    "check=True: BR_EFAILED, returncode 3, stdout 'partial', stderr 'disk full'"
    "no-such-program: BR_ENOENT (no such file or directory)"
    "sleep 10, timeout 0.2 s: BR_ETIMEDOUT, returncode -9 (SIGKILL is 9), after at least 0.2 s")
endfunction()

# --- the process pool (examples/mp_*.c, ppe_*.c) ---------------------------------------
function(check_mp_apply_async)
  ex_expect_count("^sub_progress sucess$" 1)
  ex_expect_count("^callback: 3$" 1)
  ex_expect_before("^sub_progress sucess$" "^callback: 3$")
  ex_expect_before("^callback: 3$" "^3$")
  ex_expect_nlines(3)
endfunction()

function(check_mp_imap)
  # imap: input order, whatever order the tasks end in
  ex_expect_subsequence("^[0-9] success$" "1 success" "5 success" "3 success")
  # imap_unordered: each once (completion order: 1, 3, 5 on an idle machine)
  foreach(n 1 3 5)
    ex_expect_count("^${n} sleep success$" 1)
  endforeach()
  ex_expect_count("^sub_progress sucess$" 6)
  ex_expect_before("^[0-9] success$" "^[0-9] sleep success$")
endfunction()

function(check_ppe_primes)
  ex_expect_subsequence("^map " "map 112272535095293 is prime: True"
                        "map 112582705942171 is prime: True"
                        "map 112272535095293 is prime: True"
                        "map 115280095190773 is prime: True"
                        "map 115797848077099 is prime: True"
                        "map 1099726899285419 is prime: False")
  ex_expect_count("^done [0-9]+ is prime: True$" 5)
  ex_expect_count("^done 1099726899285419 is prime: False$" 1)
  ex_expect_count("^5 of 6 are prime$" 1)
endfunction()

# --- processes (braid/process.h) ----------------------------------------------------

# process_args: two children, five 40 ms sleeps each, joined before the main's line.
function(check_process_args_common method)
  ex_expect_count("^run1函数执行完成$" 5)
  ex_expect_count("^run2函数执行完成$" 5)
  ex_expect_before("^run[12]函数执行完成$" "^子进程执行完成,继续开始主进程$")
  ex_expect_line_at(-2 "${method}: exitcodes 0 0")
  ex_expect_seconds("^([0-9.]+)$" 200 inf)
  ex_expect_nlines(13)
endfunction()
function(check_process_args)
  check_process_args_common(fork)
endfunction()
function(check_process_args_spawn)
  check_process_args_common(spawn)
endfunction()

function(check_process_global)
  ex_expect_lines("run1函数执行完成 (num = 1 in the child)" "2")
endfunction()

# os_fork: both print "jack"; the pid the parent got is the child's own; its parent is
# the parent.
function(check_os_fork)
  ex_expect_count("^jack$" 2)
  ex_capture(child "^子进程 ([0-9]+) ,父进程是: [0-9]+\\.$")
  ex_capture(ppid "^子进程 [0-9]+ ,父进程是: ([0-9]+)\\.$")
  ex_expect_line("我是父进程:${child}.")
  ex_expect_line_at(-1 "parent ${ppid}: child exited with 0")
  ex_expect_nlines(5)
endfunction()

# process_daemon: the daemon child never prints (it would after 300 ms; the stdout pipe
# it holds would keep the output open until it did).
function(check_process_daemon)
  ex_expect_lines("daemon: yes" "main process ends")
endfunction()
function(check_process_daemon_crash)
  ex_expect_count("^parent [0-9]+: daemon child [0-9]+ started; now the parent is killed$" 1)
  ex_expect_line_at(-1 "parent exitcode -9")
  ex_expect_no_line("outlived")
  ex_expect_nlines(2)
endfunction()

# cpu_pids: every child's parent is the main process; children have distinct pids.
function(check_cpu_pids)
  ex_expect_count("^cpu_count: [1-9][0-9]*$" 1)
  ex_capture(main "^main: pid ([0-9]+) \\(MainProcess\\)$")
  ex_capture(c1 "^Process-1: pid ([0-9]+), parent ${main}$")
  ex_capture(c2 "^Process-2: pid ([0-9]+), parent ${main}$")
  if(c1 STREQUAL c2 OR c1 STREQUAL main)
    ex_fail("pids not distinct: main ${main}, children ${c1} ${c2}")
  endif()
  ex_expect_subsequence("^joined pid " "joined pid ${c1}" "joined pid ${c2}")
  ex_expect_before("^Process-1: " "^joined pid ${c1}$")
  ex_expect_nlines(6)
endfunction()

# --- queues, pipes and shared state between processes ----------------------------------

# mp_queue: the consumer prints what the producer put, on processes and on a pool whose
# workers use the queue made before them; then the main process reads 1, 2, 3 in order.
function(check_mp_queue)
  ex_expect_lines("processes:" "a" "pool:" "a" "run1:" "run1函数执行完成"
                  "主进程获取数据 1" "主进程获取数据 2" "主进程获取数据 3")
endfunction()

# mp_pipe: the message, then EOF once the producer closed; a send with no reader left is
# BR_EPIPE and the program goes on (no SIGPIPE).
function(check_mp_pipe)
  ex_expect_lines("a" "then: BR_EOF" "send after the reader left: BR_EPIPE")
endfunction()

# mp_manager: both children's entries in the dict (in the order the two processes wrote
# them), the name/phone dict and the list, each after its child said it was done.
function(check_mp_manager)
  ex_index(first "^\\{'jack': 22, 'hong': 34\\}$|^\\{'hong': 34, 'jack': 22\\}$")
  if(NOT first EQUAL 0)
    ex_fail("expected the dict {'jack': 22, 'hong': 34} (either order) first, got '${EX_LINE_0}'")
  endif()
  ex_expect_line_at(1 "run1函数执行完成")
  ex_expect_line_at(2 "name=九问, phone=193")
  ex_expect_line_at(3 "run1函数执行完成")
  ex_expect_line_at(4 "1")
  ex_expect_line_at(5 "2")
  ex_expect_nlines(6)
endfunction()

# mp_pool_apply: apply_async returns before its task runs (the task waits for the main
# process's word), apply only after its task ended; map_async and map give the squares
# in input order.
function(check_mp_pool_apply)
  ex_expect_lines("apply_async returned" "1" "2" "3" "run1函数执行完成" "joined"
                  "1" "2" "3" "run1函数执行完成" "apply returned"
                  "[1, 4, 9, 16, 25, 36, 49, 64, 81, 100]"
                  "[1, 4, 9, 16, 25, 36, 49, 64, 81, 100]")
endfunction()

# --- asyncio: coroutines on the event loop -----------------------------------------------

# aio_hello: the ten greetings in task order (tasks start in creation order), all ten
# asleep at once (ten 0.1 s sleeps overlap), and not less than one sleep in total.
function(check_aio_hello)
  ex_expect_subsequence("^Hello World! "
                        "Hello World! 0" "Hello World! 1" "Hello World! 2" "Hello World! 3"
                        "Hello World! 4" "Hello World! 5" "Hello World! 6" "Hello World! 7"
                        "Hello World! 8" "Hello World! 9")
  ex_expect_line_at(10 "asleep at once: 10")
  ex_expect_seconds("^took ([0-9.]+) s$" 100 inf)
  ex_expect_nlines(12)
endfunction()

# aio_work: work1 and work2 alternate, five each (equal sleeps, work1 always asleep
# first); at least five 50 ms sleeps in total.
function(check_aio_work)
  ex_expect_subsequence("^work"
                        "work1:听音乐..." "work2:打游戏..." "work1:听音乐..." "work2:打游戏..."
                        "work1:听音乐..." "work2:打游戏..." "work1:听音乐..." "work2:打游戏..."
                        "work1:听音乐..." "work2:打游戏...")
  ex_expect_seconds("^共花费时间([0-9.]+)秒$" 250 inf)
  ex_expect_nlines(11)
endfunction()

# aio_create_task: the tutorial's exact order (a created task runs only once its creator
# suspends); then the same with asyncio.wait: both done, none pending.
function(check_aio_create_task)
  ex_expect_lines("示例1" "main函数开始" "main函数结束" "1" "1" "2" "2" "返回值 返回值"
                  "示例2" "main函数开始" "main函数结束" "1" "1" "2" "2"
                  "done: 2, pending: 0" "finished result='返回值'" "finished result='返回值'")
  ex_expect_nlines(18)
endfunction()

# aio_gather_wait: gather's results in input order; wait with a timeout: three done (in
# input order), the fourth pending (it waits on an event set after the wait).
function(check_aio_gather_wait)
  ex_expect_lines("开始爬取：https://www.cnblogs.com/sitehome/p/1"
                  "开始爬取：https://www.cnblogs.com/sitehome/p/2"
                  "开始爬取：https://www.cnblogs.com/sitehome/p/3"
                  "爬取完成：https://www.cnblogs.com/sitehome/p/1"
                  "爬取完成：https://www.cnblogs.com/sitehome/p/2"
                  "爬取完成：https://www.cnblogs.com/sitehome/p/3"
                  "gather: sitehome/p/1 sitehome/p/2 sitehome/p/3"
                  "开始爬取：https://www.cnblogs.com/sitehome/p/1"
                  "开始爬取：https://www.cnblogs.com/sitehome/p/2"
                  "开始爬取：https://www.cnblogs.com/sitehome/p/3"
                  "开始爬取：https://www.cnblogs.com/sitehome/p/4"
                  "爬取完成：https://www.cnblogs.com/sitehome/p/1"
                  "爬取完成：https://www.cnblogs.com/sitehome/p/2"
                  "爬取完成：https://www.cnblogs.com/sitehome/p/3"
                  "wait: timed out, done 3, pending 1"
                  "done: sitehome/p/1" "done: sitehome/p/2" "done: sitehome/p/3"
                  "pending: RUNNING"
                  "爬取完成：https://www.cnblogs.com/sitehome/p/4")
  ex_expect_nlines(20)
endfunction()

# aio_await: the tutorial's output, then the same through a task.
function(check_aio_await)
  ex_expect_lines("执行协程函数内部代码" "start" "end" "IO的结果是:返回值 " "start" "end"
                  "IO的结果是:返回值 ")
  ex_expect_nlines(7)
endfunction()

# aio_sem: 50 posts, each once, started and finished; never more than 10 inside the
# semaphore and, since the first ten are all in before any sleep ends, exactly 10.
function(check_aio_sem)
  ex_expect_each_once("^post data:.*\"PageIndex\":([0-9]+),.*\\}$" 1 50)
  ex_expect_each_once("^post data:.*\"PageIndex\":([0-9]+),.*\\},10[0-9][0-9]$" 1 50)
  ex_expect_line_at(-2 "most posts at once: 10")
  ex_expect_count("^一共花费 " 1)
endfunction()

# aio_queue_lock: the ticker runs while the consumer is suspended in get (before the
# producer starts); all 100 items, both sums 5050.
function(check_aio_queue_lock)
  ex_expect_lines("consumer: waiting for the first item"
                  "ticker: the loop runs while the consumer waits"
                  "consumer: took 100 items" "produced 5050, consumed 5050")
  ex_expect_nlines(4)
endfunction()
