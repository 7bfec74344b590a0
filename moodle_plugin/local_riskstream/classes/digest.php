<?php
// This file is part of the riskstream Moodle plugin.
//
// This program is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.


namespace local_riskstream;

use context_course;
use core\message\message;
use moodle_url;

/**
 * The daily digest: one notification a day per teacher listing the new alerts of their courses.
 *
 * A teacher chooses (user preference local_riskstream_digest): 'digest' or 'each'. Unset, a
 * course that raised more than the site's `digestabove` alerts in the last day sends digests.
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class digest {
    /** User preference: 'digest', 'each' or unset (automatic). */
    const PREF = 'local_riskstream_digest';

    /**
     * Does this teacher get this course's alerts as a daily digest?
     *
     * @param int $teacherid
     * @param int $courseid
     * @return bool
     */
    public static function wants_digest(int $teacherid, int $courseid): bool {
        global $DB;
        $pref = get_user_preferences(self::PREF, '', $teacherid);
        if ($pref === 'digest' || $pref === 'each') {
            return $pref === 'digest';
        }
        $above = (int)get_config('local_riskstream', 'digestabove');
        if ($above <= 0) {
            return false;
        }
        $recent = $DB->count_records_select(alerts::TABLE, 'courseid = :c AND timereceived > :t',
            ['c' => $courseid, 't' => time() - DAYSECS]);
        return $recent > $above;
    }

    /**
     * Send every digest due: alerts received after $since, per teacher in digest mode.
     *
     * @param int $since unix time of the previous digest run
     * @return int notifications sent
     */
    public static function send(int $since): int {
        global $DB;
        $alerts = $DB->get_records_select(alerts::TABLE, 'timereceived > :since', ['since' => $since],
            'courseid ASC, risk DESC');
        $perteacher = [];
        $users = [];
        foreach ($alerts as $a) {
            $context = context_course::instance($a->courseid, IGNORE_MISSING);
            if (!$context) {
                continue;
            }
            $teachers = get_enrolled_users($context, 'local/riskstream:viewalerts', 0, 'u.*', null, 0, 0, true);
            foreach ($teachers as $t) {
                if (self::wants_digest((int)$t->id, (int)$a->courseid)) {
                    $perteacher[$t->id][] = $a;
                    $users[$t->id] = $t;
                }
            }
        }
        $sent = 0;
        foreach ($perteacher as $teacherid => $list) {
            $lines = [];
            $courses = [];
            foreach ($list as $a) {
                $courses[$a->courseid] ??= get_course($a->courseid);
                $student = $DB->get_record('user', ['id' => $a->userid], '*', IGNORE_MISSING);
                $lines[] = '- ' . get_string('digestline', 'local_riskstream', (object)[
                    'student' => $student ? fullname($student) : get_string('unknownuser', 'local_riskstream'),
                    'level' => get_string('level_' . $a->level, 'local_riskstream'),
                    'risk' => round($a->risk * 100),
                    'course' => format_string($courses[$a->courseid]->fullname, true, ['escape' => false]),
                    'url' => (new moodle_url('/local/riskstream/index.php', ['id' => $a->courseid]))->out(false),
                ]);
            }
            $message = new message();
            $message->component = 'local_riskstream';
            $message->name = 'riskdigest';
            $message->userfrom = \core_user::get_noreply_user();
            $message->userto = $users[$teacherid];
            $message->subject = get_string('digestsubject', 'local_riskstream', count($list));
            $message->fullmessage = get_string('digestbody', 'local_riskstream', implode("\n", $lines));
            $message->fullmessageformat = FORMAT_PLAIN;
            $message->fullmessagehtml = '<p>' . nl2br(s($message->fullmessage)) . '</p>';
            $message->smallmessage = $message->subject;
            $message->notification = 1;
            if (count($courses) === 1) {
                $message->courseid = array_key_first($courses);
                $message->contexturl = (new moodle_url('/local/riskstream/index.php',
                    ['id' => array_key_first($courses)]))->out(false);
                $message->contexturlname = get_string('alertspage', 'local_riskstream');
            }
            if (message_send($message)) {
                $sent++;
            }
        }
        return $sent;
    }
}
